"""Shop knowledge: the size chart's conversions and the size a message asks about (pure
logic), and the shop's documents indexed with llama-index into Qdrant with Bijou's text
encoder: answered with the right source, declined where they do not say, reindexed only
when the documents change, on the embedded engine and the server engine alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bijou.catalog.loader import BUNDLED_SHOP
from bijou.config import BijouConfig
from bijou.fusion.encoders import Encoders
from bijou.retrieval.knowledge import (
    BijouEmbedding,
    ShopKnowledge,
    read_documents,
    searches,
    sections,
)
from bijou.retrieval.sizes import SizeChart, SizeError

CHART = SizeChart.load()


@pytest.mark.parametrize(
    ("kind", "system", "size", "expected", "exact"),
    [
        ("ring", "us", "7", {"uk": "N½", "eu": "54", "india": "14", "china": "14"}, True),
        ("ring", "us", "7 1/2", {"us": "7.5"}, True),
        ("ring", "uk", "n 1/2", {"us": "7"}, True),
        ("ring", "uk", "N", {"us": "6.5"}, False),  # between M½ and N½: the nearer
        ("ring", "eu", "54", {"us": "7"}, True),
        ("ring", "india", "16", {"us": "7.5"}, True),
        ("ring", "circumference_mm", "57", {"us": "8"}, True),
        ("bangle", "india", "2.6", {"us": "M", "eu": "190", "china": "60"}, True),
        ("bangle", "india", "2/8", {"india": "2-8"}, True),
        ("bangle", "china", "58", {"india": "2-4"}, False),
    ],
)
def test_size_conversions(
    kind: str, system: str, size: str, expected: dict[str, str], exact: bool
) -> None:
    conversion = CHART.convert(kind, system, size)
    assert {k: conversion.row.sizes[k] for k in expected} == expected
    assert conversion.exact is exact


@pytest.mark.parametrize(
    ("kind", "system", "size", "reason"),
    [
        ("ring", "us", "40", "outside"),
        ("ring", "uk", "Q9", "not a UK ring size"),
        ("ring", "circumference_mm", "10", "outside"),
        ("ring", "martian", "7", "unknown size system"),
        ("watch", "us", "7", "no size chart"),
    ],
)
def test_sizes_off_the_chart_say_why(kind: str, system: str, size: str, reason: str) -> None:
    with pytest.raises(SizeError, match=reason):
        CHART.convert(kind, system, size)


@pytest.mark.parametrize(
    ("message", "kind", "system", "size"),
    [
        ("what is US 7 in Indian size", "ring", "us", "7"),
        ("I wear a size N in the UK, what is that in US?", "ring", "uk", "n"),
        ("my ring size is 14 indian, what is it in us", "ring", "india", "14"),
        ("my bangle is 2.6, what is that in chinese size", "bangle", "india", "2-6"),
        ("my finger is 54 mm around", "ring", "circumference_mm", "54"),
        ("the inner diameter of my ring is 17 mm", "ring", "diameter_mm", "17"),
        ("is this bracelet 18 cm", "bangle", "circumference_mm", "180"),
    ],
)
def test_the_size_a_message_asks_about(message: str, kind: str, system: str, size: str) -> None:
    asked = CHART.read(message)
    assert asked is not None
    assert (asked.kind, asked.system, asked.size) == (kind, system, size)


@pytest.mark.parametrize(
    "message", ["gold earrings under 2000", "do you have a size 7 ring", "gold ring in usa"]
)
def test_no_size_where_none_is_asked(message: str) -> None:
    assert CHART.read(message) is None


def test_every_document_is_split_into_sourced_sections() -> None:
    documents = read_documents(BUNDLED_SHOP)
    assert len(documents) >= 9
    views = sections(documents)
    by_source = {v.metadata["source"] for v in views}
    assert by_source == {d.metadata["source"] for d in documents}
    assert all(v.metadata["section"] and v.metadata["body"] for v in views)


def test_the_embedding_adapter_is_the_text_encoder(encoders: Encoders) -> None:
    adapter = BijouEmbedding(encoders.text)
    texts = ["silver care", "free delivery over Rs 999"]
    ours = encoders.text.encode(texts)
    theirs = np.array(adapter.get_text_embedding_batch(texts))
    assert np.allclose(ours, theirs, atol=1e-5)
    assert np.allclose(adapter.get_query_embedding(texts[0]), ours[0], atol=1e-5)


# Written against the documents to check the plumbing, not to measure: the measurement is
# the held-out set (docs/knowledge.md).
ANSWERED = [
    ("Can I pay cash when the parcel arrives?", "payment.md"),
    ("How do I get the black tarnish off my silver anklet?", "care.md"),
    ("What does the BIS hallmark on gold jewellery show?", "purity-and-hallmarks.md"),
    ("Do you deliver to Singapore and how long does it take?", "delivery.md"),
]
DECLINED = ["What time does your Mumbai showroom open?", "Do you sell perfume gift hampers?"]
# The pages are English: a Chinese or Hinglish question finds its page through the English
# words of its topic.
ANSWERED_IN_OTHER_LANGUAGES = [
    ("耳环可以换货吗", "returns-and-exchanges.md"),
    ("項鍊可以用信用卡分期付款嗎", "payment.md"),
    ("kangan ka naap kaise pata karun", "bangle-sizes.md"),
]


@pytest.mark.parametrize(
    ("question", "searched"),
    [
        ("戒指尺码怎么量", ["ring size", "size"]),  # the Chinese characters alone are noise
        ("項鍊可以刻字嗎", ["necklace engrave", "engrave"]),  # traditional characters too
        ("kya isko wapas kar sakte hain", ["kya isko wapas kar sakte hain", "return"]),
        ("chandi ki anguthi", ["chandi ki anguthi", "silver ring"]),  # no topic: no topic search
    ],
)
def test_other_languages_are_searched_by_their_words_in_english(
    question: str, searched: list[str]
) -> None:
    assert searches(question) == searched


def test_english_questions_are_searched_as_asked() -> None:
    assert searches("how do I clean my silver ring") == ["how do I clean my silver ring"]
    assert searches("你们有实体店吗") == ["你们有实体店吗"]  # no known word: as asked


def _config(tmp_path: Path, **index: str) -> BijouConfig:
    return BijouConfig.model_validate({"data_dir": tmp_path, "index": index or {}})


def test_answers_name_their_source_and_unknowns_are_declined(
    tmp_path: Path, encoders: Encoders
) -> None:
    knowledge = ShopKnowledge.open(_config(tmp_path), encoders.text)
    try:
        for question, source in ANSWERED:
            answer = knowledge.answer(question)
            assert answer.answered, question
            assert answer.passages[0].source == source, question
            assert answer.passages[0].text in (BUNDLED_SHOP / source).read_text()
        for question, source in ANSWERED_IN_OTHER_LANGUAGES:
            answer = knowledge.answer(question)
            assert answer.answered and answer.passages[0].source == source, question
        for question in DECLINED:
            assert not knowledge.answer(question).answered, question
        assert not knowledge.answer("   ").answered
    finally:
        knowledge.close()


def test_reindexed_only_when_the_documents_change(tmp_path: Path, encoders: Encoders) -> None:
    shop = tmp_path / "shop"
    shutil.copytree(BUNDLED_SHOP, shop)
    config = BijouConfig.model_validate(
        {"data_dir": tmp_path / "data", "knowledge": {"path": shop}}
    )

    class Counting:
        version, dim, calls = encoders.text.version, encoders.text.dim, 0

        def encode(self, texts: list[str]) -> np.ndarray:
            if len(texts) > 1:
                Counting.calls += 1
            return encoders.text.encode(texts)

    ShopKnowledge.open(config, Counting()).close()
    built = Counting.calls
    assert built > 0
    ShopKnowledge.open(config, Counting()).close()
    assert Counting.calls == built  # the same documents: reopened, nothing embedded
    (shop / "loyalty.md").write_text(
        "# Loyalty programme\n\n## Points\nEvery Rs 100 spent earns one Bijou point.\n"
    )
    knowledge = ShopKnowledge.open(config, Counting())
    try:
        assert Counting.calls > built
        answer = knowledge.answer("how many points do I earn when I spend Rs 100?")
        assert answer.passages[0].source == "loyalty.md"
    finally:
        knowledge.close()


def test_the_server_engine_holds_the_same_collection(tmp_path: Path, encoders: Encoders) -> None:
    config = _config(tmp_path, mode="server", url=f"local:{tmp_path / 'qdrant'}")
    knowledge = ShopKnowledge.open(config, encoders.text)
    try:
        question, source = ANSWERED[0]
        assert knowledge.answer(question).passages[0].source == source
        assert knowledge.client.collection_exists(config.knowledge.collection)
    finally:
        knowledge.close()


def test_the_agent_quotes_the_page_and_names_it(
    small_engine, finder, chat_model, tmp_path: Path
) -> None:
    from bijou.agent.agent import ShoppingAgent
    from bijou.agent.memory import SessionStore
    from bijou.retrieval.shop import LocalShop

    with SessionStore(tmp_path / "s.sqlite3") as store:
        agent = ShoppingAgent(small_engine.config, LocalShop(small_engine, finder), store,
                              chat_model)  # fmt: skip
        session = agent.start_session()
        policy = agent.reply(session, "Can I pay cash when the parcel arrives?")
        assert policy.move == "shop_question" and policy.sources[0].startswith("payment.md#")
        assert "Payment" in policy.text and "Rs 49" in policy.text
        assert not policy.products and not policy.cross_sell  # no product facts mixed in
        # Pages that do not say are never quoted (a question the cues take for small talk
        # gets the assistant's own line).
        unknown = agent.reply(session, "What time does your Mumbai showroom open?")
        assert unknown.sources == [] and "page says" not in unknown.text
        size = agent.reply(session, "what is US 7 in Indian size?")
        assert size.move == "size_conversion" and "India 14" in size.text
        assert size.sources == ["sizes.yaml#ring"]
