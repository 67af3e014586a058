"""Understanding shoppers across turns: the dialog state and the tracker that updates it."""
