"""The OpenAI-compatible API through the official `openai` client against the app under
uvicorn: the model list, a conversation carried by `messages` (plain and streamed), `user`
as the returning shopper, and errors in OpenAI's shape (the client's own exceptions)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import openai
import pytest
from fastapi import FastAPI

from bijou.agent.agent import ShoppingAgent
from bijou.agent.llm import ChatModel
from bijou.agent.memory import SessionStore
from bijou.retrieval.complements import ComplementFinder
from bijou.retrieval.search import SearchEngine
from bijou.retrieval.shop import LocalShop
from bijou.serve.api import create_app
from bijou.serve.local import LocalBackend
from bijou.serve.speech import SpeechToText


@pytest.fixture(scope="module")
def served(
    small_engine: SearchEngine,
    finder: ComplementFinder,
    chat_model: ChatModel,
    tmp_path_factory: pytest.TempPathFactory,
    serve_app: Callable[[FastAPI], AbstractContextManager[str]],
) -> Iterator[tuple[openai.OpenAI, SessionStore]]:
    folder = tmp_path_factory.mktemp("openai")
    config = small_engine.config.model_copy(update={"data_dir": folder})
    store = SessionStore(folder / "sessions.sqlite3")
    agent = ShoppingAgent(config, LocalShop(small_engine, finder), store, chat_model)
    backend = LocalBackend(agent, small_engine, SpeechToText.load(config))
    with serve_app(create_app(config, lambda: backend)) as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0), store
    store.close()


def test_models_list(served: tuple[openai.OpenAI, SessionStore]) -> None:
    client, _ = served
    assert [m.id for m in client.models.list()] == ["bijou"]


def test_a_conversation_carried_by_messages(served: tuple[openai.OpenAI, SessionStore]) -> None:
    client, store = served
    messages: list[dict[str, str]] = [
        {"role": "system", "content": "You are a helpful shop assistant."},
        {"role": "user", "content": "silver earrings under 1500"},
    ]
    first = client.chat.completions.create(model="bijou", messages=messages)
    reply = first.choices[0].message.content
    assert first.object == "chat.completion" and reply
    picks = first.model_extra["bijou"]["products"]
    assert picks and all(p["price"] <= 1500 for p in picks)

    # The client sends the whole conversation back: the budget said before still holds,
    # and the turn continues the session that answered (no new one).
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "cheaper"}]
    second = client.chat.completions.create(model="bijou", messages=messages)
    later = second.model_extra["bijou"]
    assert later["session_id"] == first.model_extra["bijou"]["session_id"]
    assert all(p["price"] <= max(p["price"] for p in picks) for p in later["products"])

    # Streamed, the same conversation continues too.
    question = "how many days do I have to return a piece?"
    messages += [{"role": "assistant", "content": second.choices[0].message.content},
                 {"role": "user", "content": question}]  # fmt: skip
    pieces = client.chat.completions.create(model="bijou", messages=messages, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in pieces)
    assert "Returns and exchanges" in text and "15 days" in text
    history = store.history(later["session_id"])
    asked = [t.text for t in history if t.role == "user"][-1]
    assert asked == question


def test_a_conversation_begun_elsewhere_is_replayed(
    served: tuple[openai.OpenAI, SessionStore],
) -> None:
    """History the server never answered (another server, an edited chat): its user turns
    are heard first, so their constraints hold."""
    client, _ = served
    messages = [
        {"role": "user", "content": "I need a watch for men"},
        {"role": "assistant", "content": "Here are some watches."},
        {"role": "user", "content": "under 2000 please"},
    ]
    answer = client.chat.completions.create(model="bijou", messages=messages)
    products = answer.model_extra["bijou"]["products"]
    assert products and all(p["article"] == "Watches" and p["price"] <= 2000 for p in products)


def test_user_is_the_returning_shopper(served: tuple[openai.OpenAI, SessionStore]) -> None:
    client, store = served
    said = [{"role": "user", "content": "gold necklace, but no red please"}]
    first = client.chat.completions.create(model="bijou", messages=said, user="shopper-7")
    again = client.chat.completions.create(
        model="bijou", messages=[{"role": "user", "content": "show me earrings"}], user="shopper-7"
    )
    sessions = store.sessions_of("shopper-7")
    assert first.model_extra["bijou"]["session_id"] in sessions
    assert again.model_extra["bijou"]["session_id"] in sessions
    assert "Red" in store.preferences("shopper-7").exclude_colours


def test_errors_have_openai_shape(served: tuple[openai.OpenAI, SessionStore]) -> None:
    client, _ = served
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert unknown.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="bijou", messages=[])
    assert empty.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="bijou", messages=[{"role": "system", "content": "only a system prompt"}]
        )
    with pytest.raises(openai.APIStatusError) as long:
        client.chat.completions.create(
            model="bijou", messages=[{"role": "user", "content": "a" * 5000}]
        )
    assert long.value.status_code == 413 and long.value.body["message"]
