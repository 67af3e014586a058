"""The tracker's learned decisions, trained on the hand-written dialog corpus with
scikit-learn: which requests a message holds (multi-label), what a question is about, what
each category, colour or person named is in its sentence (wanted, refused, the recipient,
or only mentioned: "my friend said", "is the pendant real gold?"), and whether the wanted
values replace the wish, join it or clear it.

Features are character n-grams (any language, typos included) and words of the normalised
message, plus context tokens the tracker adds ("__shown_3", "__cart_1", "__new"). Linear
models: they train in seconds on 2 cores and answer in well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import MultiLabelBinarizer

MODEL_PATH = Path(__file__).parent / "checkpoints" / "tracker.joblib"
SlotOp = Literal["keep", "replace", "add", "clear"]


@dataclass(frozen=True)
class Example:
    text: str
    tokens: tuple[str, ...]
    labels: tuple[str, ...]  # one label, or several for the moves


@dataclass(frozen=True)
class MovePrediction:
    labels: tuple[str, ...]
    probabilities: dict[str, float]


def _features() -> FeatureUnion:
    return FeatureUnion(
        [
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True
                ),
            ),
            (
                "words",
                TfidfVectorizer(
                    analyzer="word",
                    token_pattern=r"\S+",
                    ngram_range=(1, 2),
                    min_df=1,
                    sublinear_tf=True,
                ),
            ),
        ]
    )


def mention_text(text: str, start: int, end: int, width: int = 24) -> str:
    """A named value's surroundings with the value itself blanked, so the model learns the
    role of the words around it ("not a __", "__ dikhao", "my __ said"), not the value."""
    left, right = text[max(0, start - width) : start], text[end : end + width]
    marked = [f"L:{w}" for w in left.split()[-4:]] + [f"R:{w}" for w in right.split()[:4]]
    return f"{left}⟦⟧{right} {' '.join(marked)}"


def _doc(text: str, tokens: Sequence[str]) -> str:
    return f"{text} {' '.join(tokens)}"


def _single(examples: Sequence[Example], fallback: str) -> Pipeline | str:
    """A classifier of one label; a constant when the corpus shows only one (``fallback``
    when it shows none)."""
    labels = [e.labels[0] for e in examples]
    if len(set(labels)) < 2:
        return labels[0] if labels else fallback
    model = Pipeline([("x", _features()), ("clf", LogisticRegression(C=4.0, max_iter=2000))])
    model.fit([_doc(e.text, e.tokens) for e in examples], labels)
    return model


class TrackerModel:
    def __init__(
        self,
        moves: Pipeline,
        binarizer: MultiLabelBinarizer,
        about: Pipeline | str,
        slot_ops: dict[str, Pipeline | str],
        mentions: dict[str, Pipeline | str],
    ) -> None:
        self._moves = moves
        self._binarizer = binarizer
        self._about = about
        self._slot_ops = slot_ops
        self._mentions = mentions

    @classmethod
    def fit(
        cls,
        moves: Sequence[Example],
        about: Sequence[Example],
        slot_ops: Mapping[str, Sequence[Example]],
        mentions: Mapping[str, Sequence[Example]],
    ) -> TrackerModel:
        binarizer = MultiLabelBinarizer()
        y = binarizer.fit_transform([e.labels for e in moves])
        move_model = Pipeline(
            [
                ("x", _features()),
                ("clf", OneVsRestClassifier(LogisticRegression(C=4.0, max_iter=2000))),
            ]
        )
        move_model.fit([_doc(e.text, e.tokens) for e in moves], y)
        ops = {slot: _single(examples, "replace") for slot, examples in slot_ops.items()}
        # A slot the corpus has no named values of keeps the rules' roles.
        roles = {slot: _single(examples, "") for slot, examples in mentions.items() if examples}
        return cls(move_model, binarizer, _single(about, "product"), ops, roles)

    def moves(self, text: str, tokens: Sequence[str]) -> MovePrediction:
        p = self._moves.predict_proba([_doc(text, tokens)])[0]
        classes = [str(c) for c in self._binarizer.classes_]
        probabilities = dict(zip(classes, (float(x) for x in p), strict=True))
        chosen = [c for c, x in zip(classes, p, strict=True) if x >= 0.5]
        if not chosen:
            chosen = [classes[int(np.argmax(p))]]
        # In the order a reader meets them is unknown to a bag of n-grams: most likely first.
        chosen.sort(key=lambda c: -probabilities[c])
        return MovePrediction(tuple(chosen), probabilities)

    def question_about(self, text: str, tokens: Sequence[str]) -> str:
        if isinstance(self._about, str):
            return self._about
        return str(self._about.predict([_doc(text, tokens)])[0])

    def slot_op(self, slot: str, text: str, tokens: Sequence[str]) -> SlotOp:
        """What the values a message names for ``slot`` do to the wish."""
        model = self._slot_ops.get(slot, "replace")
        if isinstance(model, str):
            return cast(SlotOp, model)
        return cast(SlotOp, str(model.predict([_doc(text, tokens)])[0]))

    def mention_role(self, slot: str, text: str, tokens: Sequence[str]) -> tuple[str, float] | None:
        """What one value named in a message is to the wish (``text``: its sentence around it,
        see `mention_text`), with the model's probability; None where the corpus taught
        nothing for ``slot``."""
        model = self._mentions.get(slot)
        if model is None:
            return None
        if isinstance(model, str):
            return model, 1.0
        p = model.predict_proba([_doc(text, tokens)])[0]
        best = int(np.argmax(p))
        return str(model.classes_[best]), float(p[best])

    def save(self, path: Path = MODEL_PATH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path, compress=3)


def load_tracker_model(path: Path = MODEL_PATH) -> TrackerModel:
    model = joblib.load(path)
    if not isinstance(model, TrackerModel):
        raise TypeError(f"{path} holds a {type(model).__name__}, not a TrackerModel")
    return model
