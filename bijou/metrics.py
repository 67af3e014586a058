"""Retrieval metrics over TREC-style runs and graded relevance judgements (qrels).

nDCG uses linear gains (the grade itself) with a log2 rank discount, the ideal ranking taken
from the qrels; a document counts as relevant for recall and MRR when its grade is above 0.
Files are JSONL: queries ``{"qid", "text"?, "image"?, ...}``, qrels ``{"qid", "id", "rel"}``
and runs ``{"qid", "ids"}`` (what ``bijou search --batch --json`` writes)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Qrels = Mapping[str, int]  # document id -> grade, for one query


@dataclass(frozen=True)
class RetrievalMetrics:
    ndcg: float
    recall: float
    mrr: float
    count: int  # queries judged


@dataclass(frozen=True)
class Query:
    qid: str
    text: str = ""
    image: str | None = None
    family: str = ""
    lang: str = ""  # the query's language, when the set records it


def _top(ranked_ids: Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct ids: a run that repeats a document earns nothing twice."""
    seen: dict[str, None] = {}
    for pid in ranked_ids:
        if len(seen) == k:
            break
        seen.setdefault(pid, None)
    return list(seen)


def ndcg_at_k(ranked_ids: Sequence[str], qrels: Qrels, k: int = 10) -> float:
    def dcg(grades: Sequence[int]) -> float:
        return sum(g / math.log2(rank + 1) for rank, g in enumerate(grades, start=1))

    ideal = dcg(sorted((g for g in qrels.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([max(qrels.get(pid, 0), 0) for pid in _top(ranked_ids, k)]) / ideal


def recall_at_k(ranked_ids: Sequence[str], qrels: Qrels, k: int = 10) -> float:
    relevant = {pid for pid, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_top(ranked_ids, k))) / len(relevant)


def mrr(ranked_ids: Sequence[str], qrels: Qrels, k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top ``k``, else 0."""
    for rank, pid in enumerate(_top(ranked_ids, k), start=1):
        if qrels.get(pid, 0) > 0:
            return 1.0 / rank
    return 0.0


def evaluate(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Qrels], k: int = 10
) -> RetrievalMetrics:
    """Means over every query with at least one relevant document; a query missing from the
    run scores 0, so a system cannot gain by skipping hard queries."""
    judged = [qid for qid, grades in qrels.items() if any(g > 0 for g in grades.values())]
    if not judged:
        return RetrievalMetrics(0.0, 0.0, 0.0, 0)
    totals = [0.0, 0.0, 0.0]
    for qid in judged:
        ranked = run.get(qid, ())
        for i, metric in enumerate((ndcg_at_k, recall_at_k, mrr)):
            totals[i] += metric(ranked, qrels[qid], k)
    n = len(judged)
    return RetrievalMetrics(totals[0] / n, totals[1] / n, totals[2] / n, n)


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{line}: expected a JSON object")
            yield line, row


def _field(path: Path, line: int, row: dict[str, Any], name: str, kind: type) -> Any:
    value = row.get(name)
    # bool is an int subclass; a grade of true is a typo, not a judgement.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{path}:{line}: {name!r} must be a {kind.__name__}, got {value!r}")
    return value


def read_queries(path: Path) -> list[Query]:
    queries = []
    for line, row in _json_lines(path):
        qid = _field(path, line, row, "qid", str)
        text, image = row.get("text", ""), row.get("image")
        if not isinstance(text, str) or (image is not None and not isinstance(image, str)):
            raise ValueError(f"{path}:{line}: 'text' and 'image' must be strings")
        if not text.strip() and not image:
            raise ValueError(f"{path}:{line}: a query needs a 'text' or an 'image'")
        queries.append(
            Query(qid, text, image, str(row.get("family", "")), str(row.get("lang", "")))
        )
    return queries


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line, row in _json_lines(path):
        qid = _field(path, line, row, "qid", str)
        pid = _field(path, line, row, "id", str)
        qrels.setdefault(qid, {})[pid] = _field(path, line, row, "rel", int)
    return qrels


def read_run(path: Path) -> dict[str, list[str]]:
    run: dict[str, list[str]] = {}
    for line, row in _json_lines(path):
        qid = _field(path, line, row, "qid", str)
        ids = _field(path, line, row, "ids", list)
        if not all(isinstance(pid, str) for pid in ids):
            raise ValueError(f"{path}:{line}: 'ids' must be a list of strings")
        run[qid] = ids
    return run


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0 to 1) by linear interpolation between ranks (numpy's default);
    None for no values."""
    data = sorted(values)
    if not data:
        return None
    pos = (len(data) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)
