"""How the shard count trades Chroma's write calls against its filtered reads (issue 32).

An embedded Chroma index of 22,000 random unit vectors (800 spaces of 25, one space of 2,000)
is built with each shard count in turn, then used through `storage.vectors.ChromaIndex` as
the bot uses it: a light space's vector query (25 vectors: searched exactly) and a heavy
space's (2,000), each 200 times, and a save batch of 20 vectors from 20 spaces upserted 40
times (one call per shard touched, as a group commit does). Then, in one 22,000-vector
collection, both plans for a small space: Chroma's filtered HNSW search against the exact
plan (the space's vectors fetched by the same filter and ranked in numpy).

    python -m bench.shards [--quick] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    Log,
    Row,
    Section,
    command_line,
    parser_for,
    replace_section,
    setup_process,
    spread,
    warn_if_busy,
)
from storage.vector_types import VectorRecord
from storage.vectors import ChromaIndex, _exact

log = Log("bench.shards")
HEAVY = 5000  # the heavy space's id


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    normed: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normed


def timed(fn: Callable[[], Any], times: int) -> dict[str, float]:
    spent: list[float] = []
    for _ in range(times):
        started = time.perf_counter()
        fn()
        spent.append((time.perf_counter() - started) * 1000)
    return spread(spent)


def by_shards(work: Path, shards: int, spaces: int, reps: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    index = ChromaIndex.open(path=work / f"s{shards}", url=None, base="bench", shards=shards)
    try:
        owners = [s for s in range(1, spaces + 1) for _ in range(25)] + [HEAVY] * 2000
        vectors = unit(rng, len(owners))
        records = [
            VectorRecord(f"m{i}", owner, vectors[i], 0, "d") for i, owner in enumerate(owners)
        ]
        for start in range(0, len(records), 3000):
            index._upsert_sync(records[start : start + 3000], 1)
        query = unit(rng, 1)[0]
        light = timed(lambda: index._query_sync(17, query, 10, 25, 1), reps)
        heavy = timed(lambda: index._query_sync(HEAVY, query, 10, 2000, 1), reps)
        batches = iter(range(10**6))

        def save_batch() -> None:
            n = next(batches)
            fresh = unit(rng, 20)
            part = [
                VectorRecord(f"b{n}-{j}", 1 + (n * 37 + j * 13) % spaces, fresh[j], 0, "d")
                for j in range(20)
            ]
            index._upsert_sync(part, 1)

        upsert = timed(save_batch, max(reps // 5, 5))
        return {"shards": shards, "light": light, "heavy": heavy, "upsert20": upsert}
    finally:
        index.close()


def plans(work: Path, spaces: int, reps: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(2)
    index = ChromaIndex.open(path=work / "plans", url=None, base="plans", shards=1)
    found: list[dict[str, Any]] = []
    try:
        owners = [s for s in range(1, spaces + 1) for _ in range(25)]
        sizes = {100_001: 10, 100_002: 25, 100_003: 100, 100_004: 250, 100_005: 500}
        owners += [space for space, size in sizes.items() for _ in range(size)]
        vectors = unit(rng, len(owners))
        records = [
            VectorRecord(f"m{i}", owner, vectors[i], 0, "d") for i, owner in enumerate(owners)
        ]
        for start in range(0, len(records), 3000):
            index._upsert_sync(records[start : start + 3000], 1)
        collection, query = index._collection(0), unit(rng, 1)
        for space, size in sizes.items():
            where: Any = {"space_id": space}
            filtered = timed(
                lambda w=where: collection.query(  # type: ignore[misc]
                    query_embeddings=query, n_results=10, where=w, include=["distances"]
                ),
                reps // 4,
            )
            exact = timed(
                lambda w=where: _exact(  # type: ignore[misc]
                    collection.get(where=w, include=["embeddings"]), query[0], 10
                ),
                reps // 4,
            )
            found.append({"size": size, "filtered": filtered, "exact": exact})
        return found
    finally:
        index.close()


def section(result: dict[str, Any], argv: list[str]) -> Section:
    rows = [
        Row(
            f"{r['shards']} shards: light / heavy space's vector query p50 (p95)",
            f"{r['light']['p50']} ({r['light']['p95']}) / {r['heavy']['p50']} "
            f"({r['heavy']['p95']}) ms",
        )
        for r in result["shards"]
    ] + [
        Row(
            f"{r['shards']} shards: a save batch's upsert, 20 spaces, p50 (p95)",
            f"{r['upsert20']['p50']} ({r['upsert20']['p95']}) ms",
        )
        for r in result["shards"]
    ]
    table = [
        "| space size | Chroma filtered search p50 ms | exact plan (fetch + rank) p50 ms |",
        "| --- | --- | --- |",
        *(
            f"| {p['size']} | {p['filtered']['p50']} | {p['exact']['p50']} |"
            for p in result["plans"]
        ),
    ]
    return Section(
        title="Shards and query plans (bench/shards.py)",
        command=command_line("bench.shards", argv),
        facts=[
            f"{result['vectors']} random unit vectors (384 dimensions) in embedded Chroma: "
            f"{result['spaces']} spaces of 25 and one of 2,000, built once per shard count",
            "light: the space of 25 (exact plan); heavy: the space of 2,000 (unfiltered "
            "and post-filtered where it is a quarter of its shard, else filtered)",
            "the table: both plans for spaces of 10-500 in one collection of the same size "
            "(`EXACT_MAX` in storage/vectors.py picks between them)",
        ],
        rows=rows,
        tables=table,
    )


def main() -> None:
    parser = parser_for(__doc__)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    setup_process()
    warn_if_busy(log)
    spaces, reps = (80, 40) if args.quick else (800, 200)
    with tempfile.TemporaryDirectory(prefix="bench-shards-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {"spaces": spaces, "vectors": spaces * 25 + 2000}
        result["shards"] = []
        for shards in (16, 4, 1):
            result["shards"].append(by_shards(work, shards, spaces, reps))
            log(f"shards: {result['shards'][-1]}")
        result["plans"] = plans(work, spaces + 80, reps)
        log(f"plans: {result['plans']}")
    replace_section(args.out, section(result, argv))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
