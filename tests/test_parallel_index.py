"""Parallel indexing with Ray Data gives the index a local build gives, and a build killed
part way resumes from what it had written, on either path."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest

from bijou.catalog.schema import Product
from bijou.config import BijouConfig
from bijou.fusion.encoders import Encoders
from bijou.retrieval.index import IndexPoint
from bijou.retrieval.search import SearchEngine


def with_indexing(config: BijouConfig, **indexing: object) -> BijouConfig:
    return config.model_copy(update={"indexing": config.indexing.model_copy(update=indexing)})


class Killed(Exception):
    """Stands in for the process being killed mid-build."""


def test_killed_build_resumes_with_what_it_wrote(
    tmp_path: Path, make_config: Callable, encoders: Encoders, small_products: list[Product]
) -> None:
    products = small_products[:40]
    config = with_indexing(make_config(tmp_path), batch_size=16)
    engine = SearchEngine.load(config, encoders)
    encode = engine.encode

    def dies_after_two_batches(chosen: Sequence[Product]) -> Iterable[IndexPoint]:
        for n, point in enumerate(encode(chosen)):
            if n == 32:
                raise Killed
            yield point

    engine.encode = dies_after_two_batches  # type: ignore[method-assign]
    with pytest.raises(Killed):
        engine.sync(products)
    engine.index.close()

    resumed = SearchEngine.load(config, encoders)
    assert resumed.index.count() == 32  # two whole batches were written before the kill
    report = resumed.sync(products)
    assert (report.added, report.updated, report.unchanged) == (8, 0, 32)
    assert resumed.index.count() == 40
    resumed.index.close()


@pytest.fixture
def ray_session():
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
             object_store_memory=200_000_000)  # fmt: skip
    yield
    ray.shutdown()


def test_ray_build_matches_a_local_build(
    tmp_path: Path,
    make_config: Callable,
    encoders: Encoders,
    small_products: list[Product],
    ray_session: None,
) -> None:
    products = small_products[:24]
    local = SearchEngine.load(make_config(tmp_path / "local"), encoders)
    local.sync(products)
    config = with_indexing(make_config(tmp_path / "ray"), engine="ray", workers=2, batch_size=8)
    parallel = SearchEngine.load(config, encoders)
    report = parallel.sync(products)
    assert report.added == len(products)
    ids = [p.id for p in products]
    assert parallel.index.get_many(ids) == local.index.get_many(ids)
    mine = parallel.index.vectors(ids, ["text", "image"])
    theirs = local.index.vectors(ids, ["text", "image"])
    for pid in ids:
        assert mine[pid].keys() == theirs[pid].keys()
        for name, vector in mine[pid].items():
            np.testing.assert_allclose(vector, theirs[pid][name], atol=1e-4)
    # Ray was running already (a Serve app, a cluster): the build leaves it running.
    import ray

    assert ray.is_initialized()
    local.index.close()
    parallel.index.close()
