"""Retrieval quality on the dev set: hybrid search against its BM25 and dense parts alone.

    python bench/retrieval_quality.py [--config C] [--queries Q] [--qrels R] [--json OUT]

``hybrid`` is the product search (parsed filters, fused rankings); ``bm25`` and ``dense`` rank
the raw query text with one signal and no filters. Prints nDCG@10, recall@10 and MRR@10 per
query family and overall, and hybrid's nDCG@10 over the better single signal on the
attribute family.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from bijou.config import load_config
from bijou.metrics import Query, RetrievalMetrics, evaluate, read_qrels, read_queries
from bijou.retrieval.index import VectorQuery
from bijou.retrieval.search import SearchEngine, SearchRequest

K = 10
DEV = Path(__file__).resolve().parent.parent / "eval" / "dev"
System = Callable[[str], list[str]]


def systems(engine: SearchEngine) -> dict[str, System]:
    def hybrid(text: str) -> list[str]:
        return engine.search.search(SearchRequest(text, top_k=K)).ids

    def single(using: str, vector: Callable[[str], object]) -> System:
        def run(text: str) -> list[str]:
            [hits] = engine.index.search([VectorQuery(using, vector(text), limit=K)])
            return [hit.product_id for hit in hits]

        return run

    return {
        "hybrid": hybrid,
        "bm25": single("bm25", engine.search.sparse.query),
        "dense": single("text", lambda text: engine.encoders.text.encode([text])[0]),
    }


def run_all(queries: Sequence[Query], system: System) -> dict[str, list[str]]:
    return {q.qid: system(q.text) for q in queries}


def score(
    runs: dict[str, dict[str, list[str]]],
    queries: Sequence[Query],
    qrels: dict[str, dict[str, int]],
) -> dict[str, dict[str, RetrievalMetrics]]:
    """group -> system -> metrics: each family, each family's languages where it has several
    ("attribute/zh"), and "overall" for all queries."""
    groups: dict[str, set[str]] = {}
    for family in sorted({q.family for q in queries}):
        members = [q for q in queries if q.family == family]
        groups[family] = {q.qid for q in members}
        languages = sorted({q.lang for q in members if q.lang})
        for lang in languages if len(languages) > 1 else ():
            groups[f"{family}/{lang}"] = {q.qid for q in members if q.lang == lang}
    groups["overall"] = {q.qid for q in queries}
    table: dict[str, dict[str, RetrievalMetrics]] = {}
    for family, members in groups.items():
        judged = {qid: grades for qid, grades in qrels.items() if qid in members}
        table[family] = {name: evaluate(run, judged, K) for name, run in runs.items()}
    return table


def markdown(table: dict[str, dict[str, RetrievalMetrics]]) -> str:
    lines = []
    for family, by_system in table.items():
        count = next(iter(by_system.values())).count
        lines += [
            f"### {family} ({count} queries)",
            "",
            f"| system | nDCG@{K} | recall@{K} | MRR@{K} |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {m.ndcg:.3f} | {m.recall:.3f} | {m.mrr:.3f} |"
            for name, m in by_system.items()
        ]
        lines.append("")
    return "\n".join(lines)


def hybrid_ratio(by_system: dict[str, RetrievalMetrics]) -> float:
    best_single = max(by_system["bm25"].ndcg, by_system["dense"].ndcg)
    return by_system["hybrid"].ndcg / best_single if best_single else float("inf")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="default: $BIJOU_CONFIG")
    parser.add_argument("--queries", type=Path, default=DEV / "queries.jsonl")
    parser.add_argument("--qrels", type=Path, default=DEV / "qrels.jsonl")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--fusion", default=None, help="fusion model for hybrid (default: config)")
    args = parser.parse_args(argv)

    # Image queries have no text for BM25 or the dense text ranking to compare on.
    queries = [q for q in read_queries(args.queries) if q.text]
    qrels = read_qrels(args.qrels)
    config = load_config(args.config)
    if args.fusion:
        config = config.model_copy(
            update={"fusion": config.fusion.model_validate({"kind": args.fusion})}
        )
    engine = SearchEngine.load(config)
    if engine.index.manifest is None:
        sys.exit("the index is empty: run `bijou index` first")
    if engine.fusion_outdated():
        engine.refuse()
    print(f"hybrid uses fusion: {config.fusion.kind}")
    runs = {name: run_all(queries, system) for name, system in systems(engine).items()}
    table = score(runs, queries, qrels)
    print(markdown(table))
    ratio = hybrid_ratio(table["attribute"]) if "attribute" in table else None
    if ratio is not None:
        print(f"attribute nDCG@{K}: hybrid / max(bm25, dense) = {ratio:.2f}")
    if args.json:
        report = {
            "k": K,
            "families": {f: {s: asdict(m) for s, m in t.items()} for f, t in table.items()},
            "attribute_hybrid_ratio": ratio,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
