"""The shop's own knowledge: returns, delivery, payment, care, purity, gemstones, size charts,
gift wrapping. Markdown documents (the bundled demo shop's, or a shop's folder) are split by
section with llama-index and indexed into a Qdrant collection beside the products (the
same engine: embedded under the data directory, or the configured server), embedded by
Bijou's own text encoder through a llama-index embedding adapter.

An answer is the sections that say it, each with its source, never a paraphrase: a shop's
policy is quoted, not reworded by a model. Below `knowledge.min_score` nothing is returned,
so the agent says the documents do not say rather than stretching a loose match."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.node_parser import MarkdownNodeParser
from llama_index.core.schema import TextNode
from llama_index.vector_stores.qdrant import QdrantVectorStore
from pydantic import PrivateAttr
from qdrant_client import QdrantClient

from bijou.catalog.loader import BUNDLED_SHOP
from bijou.config import BijouConfig, KnowledgeConfig
from bijou.fusion.encoders import TextEncoder
from bijou.retrieval.lexicon import Lexicon, language_of, load_lexicon
from bijou.retrieval.query import normalise
from bijou.retrieval.server import connect

# Part of the corpus fingerprint: a change in how documents are split rebuilds the collection.
CHUNKING_VERSION = "markdown-sections+sentences:1"
VIEWS_PER_ASK = 8
_H1 = re.compile(r"^#\s+(.+)$", re.M)
# Sentence ends, and the rows of a Markdown table (each row is a line of its own).
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"(])|\s(?=\|\s)")


class BijouEmbedding(BaseEmbedding):
    """llama-index's embedding interface over a Bijou text encoder, so the shop's documents
    live in the same vector space as its products and need no other model."""

    _encoder: TextEncoder = PrivateAttr()

    def __init__(self, encoder: TextEncoder, **kwargs: Any) -> None:
        # One call for all the views: the encoder sorts them by length, so little padding.
        super().__init__(model_name=encoder.version, embed_batch_size=2048, **kwargs)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "BijouEmbedding"

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encoder.encode([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(texts).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


@dataclass(frozen=True)
class Passage:
    source: str  # the document's file name
    title: str  # the document's title ("Returns and exchanges")
    section: str  # the section's heading ("Return window")
    text: str  # the section as written
    score: float  # cosine similarity to the question


@dataclass(frozen=True)
class KnowledgeAnswer:
    question: str
    passages: tuple[Passage, ...]  # best first; empty: the documents do not say

    @property
    def answered(self) -> bool:
        return bool(self.passages)


def read_documents(folder: Path) -> list[Document]:
    """One llama-index document per Markdown file, titled by its first heading."""
    files = sorted(folder.glob("*.md"))
    if not files:
        raise FileNotFoundError(f"no Markdown documents in {folder}")
    documents = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        title = _H1.search(text)
        metadata = {"source": path.name, "title": title.group(1).strip() if title else path.stem}
        documents.append(Document(text=text, metadata=metadata, id_=path.name))
    return documents


def sections(documents: Sequence[Document]) -> list[TextNode]:
    """What is indexed: each section (split at the headings by llama-index), whole and
    sentence by sentence, so a question about one line of a long section still finds it.
    Every view carries its section, which is what an answer quotes."""
    nodes = MarkdownNodeParser().get_nodes_from_documents(documents)
    views: list[TextNode] = []
    for node in nodes:
        lines = node.get_content().strip().splitlines()
        heading = lines[0].lstrip("#").strip() if lines and lines[0].startswith("#") else ""
        body = "\n".join(lines[1:] if heading else lines).strip()
        if not body:
            continue  # a title with no text of its own
        title = node.metadata["title"]
        meta = {"source": node.metadata["source"], "title": title, "section": heading,
                "body": body}  # fmt: skip
        texts = [f"{title}: {heading}\n{body}"]
        texts += [f"{heading}: {s}" for s in _SENTENCE.split(" ".join(body.split())) if s]
        for text in texts:
            view = TextNode(text=text, metadata=dict(meta))
            # The encoder reads the view; the payload keeps the section for the answer.
            view.excluded_embed_metadata_keys = [*meta, "corpus"]
            view.excluded_llm_metadata_keys = [*meta, "corpus"]
            views.append(view)
    return views


def fingerprint(documents: Sequence[Document], encoder_version: str) -> str:
    digest = hashlib.sha256(f"{CHUNKING_VERSION}|{encoder_version}".encode())
    for document in documents:
        digest.update(document.metadata["source"].encode() + b"\0" + document.text.encode())
    return digest.hexdigest()[:16]


def knowledge_client(config: BijouConfig) -> QdrantClient:
    """The engine the products use: embedded (qdrant-client's local mode under the data
    directory; the product index's own embedded shard holds products only) or the server."""
    if config.index.mode == "server":
        return connect(config.index)
    folder = config.data_dir / "knowledge"
    folder.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(folder))


class ShopKnowledge:
    def __init__(
        self,
        index: VectorStoreIndex,
        client: QdrantClient,
        settings: KnowledgeConfig,
        owns_client: bool = True,
    ) -> None:
        self.index = index
        self.client = client
        self.settings = settings
        self.owns_client = owns_client
        # Several views per section: ask for enough to fill top_k sections.
        self.retriever = index.as_retriever(similarity_top_k=settings.top_k * VIEWS_PER_ASK)

    @classmethod
    def open(
        cls, config: BijouConfig, encoder: TextEncoder, client: QdrantClient | None = None
    ) -> ShopKnowledge:
        """The shop's documents, indexed again only when they or the encoder changed;
        ``client``: the products' own Qdrant connection, shared (server mode)."""
        settings = config.knowledge
        documents = read_documents(settings.path or BUNDLED_SHOP)
        corpus = fingerprint(documents, encoder.version)
        owns_client = client is None
        client = client or knowledge_client(config)
        name = settings.collection
        embedding = BijouEmbedding(encoder)
        if _held_corpus(client, name) == corpus:
            store = QdrantVectorStore(collection_name=name, client=client)
            index = VectorStoreIndex.from_vector_store(store, embed_model=embedding)
        else:
            if client.collection_exists(name):
                client.delete_collection(name)
            # Made after the drop: the store remembers whether its collection exists.
            store = QdrantVectorStore(collection_name=name, client=client)
            nodes = sections(documents)
            for node in nodes:
                node.metadata["corpus"] = corpus
            storage = StorageContext.from_defaults(vector_store=store)
            index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embedding)
        return cls(index, client, settings, owns_client)

    def answer(self, question: str) -> KnowledgeAnswer:
        """The sections that answer ``question``, best first, or none."""
        asked = searches(question, pages=self.settings.topics) if question.strip() else []
        found = [hit for text in asked for hit in self.retriever.retrieve(text)]
        best: dict[tuple[str, str], Passage] = {}
        for hit in found:
            meta, score = hit.node.metadata, float(hit.score or 0.0)
            key = (meta["source"], meta["section"])
            if score >= self.settings.min_score and (key not in best or best[key].score < score):
                best[key] = Passage(meta["source"], meta["title"], meta["section"], meta["body"],
                                    score)  # fmt: skip
        ranked = sorted(best.values(), key=lambda p: -p.score)[: self.settings.top_k]
        # A second section counts only when it is nearly as close as the best one.
        top = ranked[0].score if ranked else 0.0
        kept = [p for p in ranked if p.score >= top - self.settings.runner_up_margin]
        return KnowledgeAnswer(question, tuple(kept[: self.settings.max_passages]))

    def close(self) -> None:
        if self.owns_client:
            self.client.close()


def searches(question: str, lexicon: Lexicon | None = None, pages: Sequence[str] = ()) -> list[str]:
    """What the pages are searched with: the question as asked and, when it has Chinese or
    Hinglish words, its known words in English ("银戒指尺码怎么量" is also searched as
    "silver ring size") and its topic alone ("size"). The text encoder and the pages are
    English: a question's topic words find its page, and the rest of a sentence it cannot read
    is noise, so a Chinese one with known words is searched by them alone. A question on a
    topic the pages own (``pages``: returns, delivery...) is also searched by that topic
    alone in any language ("can I return the first one if she doesn't like it?")."""
    lex = lexicon or load_lexicon()
    text = normalise(question).lower()
    things = [term for words in (lex.colours, lex.articles) for _, term in words.find(text)]
    topics = [term for _, term in lex.attributes.find(text)]
    if all(term.language == "en" for term in things + topics):
        owned = [term.gloss for term in topics if term.values[0] in pages]
        return list(dict.fromkeys([question, *owned]))
    english = " ".join(dict.fromkeys(term.gloss for term in things + topics))
    topic = " ".join(dict.fromkeys(term.gloss for term in topics))
    asked = [] if language_of(question) == "zh" else [question]
    return [s for s in dict.fromkeys([*asked, english, topic]) if s]


def _held_corpus(client: QdrantClient, name: str) -> str | None:
    if not client.collection_exists(name):
        return None
    points, _ = client.scroll(name, limit=1, with_payload=True)
    return points[0].payload.get("corpus") if points and points[0].payload else None
