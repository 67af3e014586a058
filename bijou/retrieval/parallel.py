"""Encoding a catalog with Ray Data: ``map_batches`` over the products with the encoders as
an actor pool (``indexing.workers`` actors, each on ``cpus_per_worker`` CPUs and
``gpus_per_worker`` of a GPU), the encoded points streamed back to the caller, which upserts
them in batches (`SearchEngine.sync`: the same diff, upserts and resume as a local build).

The same code runs on one machine (Ray started here) and on a cluster (``indexing.address``:
the actors spread over its nodes; each node must reach the catalog's images at the
configured path, e.g. shared storage). Only encoding is distributed: an embedded index has
one writer, and a Qdrant server takes the upserts from the driver as well."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from bijou.catalog.loader import catalog_sources
from bijou.catalog.media import MediaStore
from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.fusion.encoders import load_encoders
from bijou.retrieval.index import IndexPoint
from bijou.retrieval.search import SparseEncoder, index_points


class EncodeActor:
    """One actor of the pool: the encoders loaded once, then batches of products encoded."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = BijouConfig.model_validate(config)
        self.encoders = load_encoders(self.config)
        self.sparse = SparseEncoder()
        self.store = MediaStore(catalog_sources(self.config)[1])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        products = [Product.model_validate_json(raw) for raw in batch["product"]]
        points = index_points(
            products, self.encoders, self.sparse, self.store, len(products), progress=False
        )
        # One pickled point per row: vectors, sparse terms and product travel together.
        return {"point": np.array([pickle.dumps(p) for p in points], dtype=object)}


def actor_config(config: BijouConfig) -> dict[str, Any]:
    """The configuration each actor loads its encoders from (its own thread count)."""
    return config.model_copy(update={"threads": config.indexing.threads_per_worker}).model_dump(
        mode="json"
    )


def _start_ray(config: BijouConfig) -> bool:
    """Connect to the configured cluster or start Ray here; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    indexing = config.indexing
    if indexing.address:
        ray.init(address=indexing.address, logging_level="ERROR")
    else:
        ray.init(
            include_dashboard=False,
            logging_level="ERROR",
            object_store_memory=indexing.object_store_bytes,
        )
    return True


def ray_index_points(
    products: Sequence[Product], config: BijouConfig, progress: bool = True
) -> Iterator[IndexPoint]:
    """Encoded points of ``products``, in the order the actors finish them."""
    import ray
    import ray.data

    indexing = config.indexing
    started = _start_ray(config)
    bar = tqdm(total=len(products), desc="indexing", unit="product", disable=not progress)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the bar above counts what was written
        rows = [{"product": p.model_dump_json()} for p in products]
        blocks = max(1, min(len(rows), indexing.workers * 4))
        dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            EncodeActor,
            fn_constructor_args=(actor_config(config),),
            batch_size=indexing.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=indexing.workers),
            num_cpus=indexing.cpus_per_worker,
            num_gpus=indexing.gpus_per_worker or None,
        )
        for batch in dataset.iter_batches(batch_size=indexing.batch_size, batch_format="numpy"):
            for raw in batch["point"]:
                yield pickle.loads(raw)
            bar.update(len(batch["point"]))
    finally:
        bar.close()
        if started:
            ray.shutdown()
