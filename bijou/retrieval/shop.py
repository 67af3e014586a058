"""What the agent may ask of the shop's catalog: search, products, images, complements.

One protocol, two implementations: `LocalShop` here (the index, models and complement finder
in this process) and, in serving, a client of the Retriever deployment. The agent only sees
the protocol, so it runs the same in a test, the CLI or a Ray replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from PIL import Image

from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.retrieval.complements import (
    Bundle,
    Compatibility,
    Complement,
    ComplementFinder,
    PairingTable,
)
from bijou.retrieval.knowledge import KnowledgeAnswer
from bijou.retrieval.query import QueryFilters, QueryParser
from bijou.retrieval.search import SearchEngine, SearchRequest, SearchResult
from bijou.retrieval.sizes import SIZE_CHART


class Shop(Protocol):
    parser: QueryParser  # knows the catalog's brands
    size_chart: Path  # the shop's ring and bangle size chart (sizes.yaml)

    def search(self, request: SearchRequest) -> SearchResult: ...
    def get(self, product_id: str) -> Product | None: ...
    def get_many(self, product_ids: Sequence[str]) -> list[Product]: ...
    def image(self, product: Product) -> Image.Image | None: ...
    def complements(
        self,
        anchor: Product,
        *,
        articles: Sequence[str] | None,
        filters: QueryFilters,
        k: int,
        exclude_ids: Sequence[str],
    ) -> list[Complement]: ...
    def bundle(
        self,
        anchor: Product,
        *,
        budget: float | None,
        articles: Sequence[str] | None,
        size: int,
        filters: QueryFilters,
        exclude_ids: Sequence[str],
    ) -> Bundle | None: ...
    def answer(self, question: str) -> KnowledgeAnswer: ...


def size_chart_of(config: BijouConfig) -> Path:
    """The shop folder's size chart, else the bundled one."""
    folder = config.knowledge.path
    return folder / "sizes.yaml" if folder and (folder / "sizes.yaml").is_file() else SIZE_CHART


class LocalShop:
    """The catalog and the shop's documents in this process."""

    def __init__(self, engine: SearchEngine, finder: ComplementFinder) -> None:
        self.engine = engine
        self.finder = finder
        self.size_chart = size_chart_of(engine.config)

    def answer(self, question: str) -> KnowledgeAnswer:
        return self.engine.knowledge.answer(question)

    @classmethod
    def load(cls, config: BijouConfig, engine: SearchEngine | None = None) -> LocalShop:
        engine = engine or SearchEngine.load(config)
        products = engine.index.get_many(list(engine.index.fingerprints()))
        pairings = PairingTable.load_or_mine(products, config.data_dir / "pairings.json")
        finder = ComplementFinder(engine.index, pairings, compatibility=Compatibility.load())
        return cls(engine, finder)

    @property
    def parser(self) -> QueryParser:
        return self.engine.search.parser

    def search(self, request: SearchRequest) -> SearchResult:
        return self.engine.search.search(request)

    def get(self, product_id: str) -> Product | None:
        return self.engine.index.get(product_id)

    def get_many(self, product_ids: Sequence[str]) -> list[Product]:
        return self.engine.index.get_many(product_ids)

    def image(self, product: Product) -> Image.Image | None:
        return self.engine.store.load(product)

    def complements(
        self,
        anchor: Product,
        *,
        articles: Sequence[str] | None,
        filters: QueryFilters,
        k: int,
        exclude_ids: Sequence[str],
    ) -> list[Complement]:
        return self.finder.find(
            anchor, articles=articles, filters=filters, k=k, exclude_ids=exclude_ids
        )

    def bundle(
        self,
        anchor: Product,
        *,
        budget: float | None,
        articles: Sequence[str] | None,
        size: int,
        filters: QueryFilters,
        exclude_ids: Sequence[str],
    ) -> Bundle | None:
        return self.finder.bundle(
            anchor,
            budget=budget,
            articles=articles,
            size=size,
            filters=filters,
            exclude_ids=exclude_ids,
        )

    def close(self) -> None:
        self.engine.close()
