"""Benchmark of the embedding backends in one run: encode latency and rate, save latency, memory.

Backends: `st-onnx` (sentence-transformers running the fp32 ONNX export: the path before issue
29), `onnx` (the same export with onnxruntime + tokenizers directly), `onnx-int8` (its int8
model), each with 1 and 2 onnxruntime intra-op threads (EMBED_THREADS), in this process:

1. single-text encode p50/p95 over SINGLES texts, batched encode rate (RATE_TEXTS texts, 64 per
   batch), best of two passes;
2. save p50/p95 through the engine: SAVES sequential `save`s on a fresh SQLite file and a fresh
   embedded Chroma, with an engine whose embedder runs that backend;
   all of 1 and 2 twice, the second round in reverse order, each figure the best of the two;
3. floor: a single-item Chroma upsert p50 (bench/engine.py's scratch collection), so each
   save's cost beyond its encode and its vector write shows;
4. memory: a child process per backend loads it and encodes RATE_TEXTS texts; its peak RSS and
   whether libtorch is mapped in it.

Run from the repo root (JSON on stdout, progress on stderr; section "## Embedding backends
(bench/encoders.py)" of docs/benchmarks.md replaced):

    python -m bench.encoders [--quick] [--out FILE]
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from bench.common import (
    Encode,
    Log,
    Row,
    Section,
    command_line,
    parser_for,
    pct,
    replace_section,
    setup_process,
)
from bench.engine import chroma_floor, make_text, more_vectors, timed_ms
from engine.settings import Settings

TITLE = "Embedding backends (bench/encoders.py)"
BACKENDS = ("st-onnx", "onnx", "onnx-int8")
THREADS = (1, 2)
SINGLES, RATE_TEXTS, SAVES = 200, 1024, 300
PARTS = ("embed", "upsert", "query")  # a save's parts timed on their own
log = Log("encoders")
CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, ".")
from bench.encoders import encoder
encode = encoder(sys.argv[1], 1, Path(sys.argv[2]))
encode([f"note number {i} about the garden and the keys" for i in range(int(sys.argv[3]))])
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
maps = Path("/proc/self/maps").read_text()
peak_mb = int(status["VmHWM"].split()[0]) / 1024
print(json.dumps({"peak_mb": peak_mb, "libtorch": "libtorch" in maps}))
"""


def encoder(backend: str, threads: int, cache: Path) -> Encode:
    """A blocking encode of all-MiniLM-L6-v2 on `backend` with `threads` intra-op threads."""
    from storage.embedder import Backend, resolve_model_path, sentence_transformer_encoder

    if backend != "st-onnx":
        return sentence_transformer_encoder(
            "all-MiniLM-L6-v2",
            backend=cast(Backend, backend),
            cache_path=cache,
            threads=threads,
        )
    import numpy as np
    import onnxruntime  # type: ignore[import-untyped]
    from sentence_transformers import SentenceTransformer

    from storage.onnx_model import ensure_onnx_export

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = SentenceTransformer(
        str(ensure_onnx_export(resolve_model_path("all-MiniLM-L6-v2"), cache)),
        device="cpu",
        backend="onnx",
        local_files_only=True,
        model_kwargs={"session_options": options},
    )

    def encode(texts: list[str]) -> np.ndarray:
        rows = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(rows, dtype=np.float32)

    return encode


async def save_ms(
    encode: Encode, backend: str, work: Path, texts: list[str]
) -> dict[str, list[float]]:
    """Each sequential save's wall time through a fresh engine embedding with `encode`, and
    the parts of it: the awaited embed (the encode, the micro-batch window and the thread
    hop), the Chroma upsert and the near-duplicate query (ms, one per save)."""
    from engine.app import open_engine
    from storage.embedder import Backend, Embedder

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{work / 'memorybot.db'}",
        chroma_path=work / "chroma",
        chroma_url=None,
        embedding_backend="onnx" if backend == "st-onnx" else cast(Backend, backend),
    )
    engine = await open_engine(settings, embedder=Embedder(encode))
    parts: dict[str, list[float]] = {"save": [], "embed": [], "upsert": [], "query": []}
    for name, owner in (
        ("embed", engine.stores.embedder),
        ("upsert", engine.stores.vectors),
        ("query", engine.stores.vectors),
    ):
        _time_calls(owner, name, parts[name])
    try:
        await engine.users.register(user_id=1)
        await engine.writes.save(space_id=1, text="warm up: the first save opens everything")
        for found in parts.values():
            found.clear()
        for text in texts:
            start = time.perf_counter()
            await engine.writes.save(space_id=1, text=text)
            parts["save"].append((time.perf_counter() - start) * 1000)
        return parts
    finally:
        await engine.aclose()


def _time_calls(owner: Any, name: str, into: list[float]) -> None:
    """Record the wall time (ms) of every call of the coroutine method `owner.name`."""
    real = getattr(owner, name)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await real(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - start) * 1000)

    setattr(owner, name, timed)


def measure(backend: str, threads: int, cache: Path, work: Path, quick: bool) -> dict[str, Any]:
    rng = random.Random(7)
    encode = encoder(backend, threads, cache)
    texts = [make_text(rng) for _ in range(RATE_TEXTS // (4 if quick else 1))]
    encode(texts[:64])  # load and warm up
    picks = iter(texts * 4)
    singles = [timed_ms(lambda: encode([next(picks)]), SINGLES // (4 if quick else 1))]
    rates = []
    for _ in range(2):
        start = time.perf_counter()
        encode(texts)
        rates.append(len(texts) / (time.perf_counter() - start))
    singles.append(timed_ms(lambda: encode([next(picks)]), SINGLES // (4 if quick else 1)))
    parts = asyncio.run(save_ms(encode, backend, work, texts[: SAVES // (4 if quick else 1)]))
    saves = parts["save"]
    p50, p95 = min(singles)
    result = {
        "backend": backend,
        "threads": threads,
        "encode_p50_ms": round(p50, 2),
        "encode_p95_ms": round(p95, 2),
        "encode_per_s": round(max(rates)),
        "save_p50_ms": round(pct(saves, 0.5), 2),
        "save_p95_ms": round(pct(saves, 0.95), 2),
        **{f"save_{part}_p50_ms": round(pct(parts[part], 0.5), 2) for part in PARTS},
    }
    log(json.dumps(result))
    return result


def best_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's best over the rounds (lowest time, highest rate)."""
    best = dict(results[0])
    for result in results[1:]:
        for key, value in result.items():
            if key.endswith("_ms"):
                best[key] = min(best[key], value)
            elif key.endswith("_per_s"):
                best[key] = max(best[key], value)
    return best


def memory(backend: str, cache: Path, texts: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, backend, str(cache), str(texts)],
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def section(r: dict[str, Any], argv: list[str]) -> Section:
    runs = {(x["backend"], x["threads"]): x for x in r["runs"]}
    old, new = runs["st-onnx", 1], runs["onnx-int8", 1]
    rows = [
        Row(
            "int8 single encode p50 (1 thread)",
            f"{new['encode_p50_ms']} ms",
            "≤ 2 ms",
            new["encode_p50_ms"] <= 2,
        ),
        Row(
            "int8 batched encode (1 thread)",
            f"{new['encode_per_s']}/s",
            "≥ 1,000/s",
            new["encode_per_s"] >= 1000,
        ),
        Row(
            "save p50: st-onnx − int8 (1 thread)",
            f"{old['save_p50_ms'] - new['save_p50_ms']:.1f} ms",
            "≥ 4 ms lower",
            old["save_p50_ms"] - new["save_p50_ms"] >= 4,
        ),
    ]
    table = [
        "| backend | threads | encode p50 | encode p95 | batched | save p50 | save p95 "
        "| in a save (p50): embed awaited | Chroma upsert | near-duplicate query |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| `{x['backend']}` | {x['threads']} | {x['encode_p50_ms']} ms | "
            f"{x['encode_p95_ms']} ms | {x['encode_per_s']}/s | {x['save_p50_ms']} ms | "
            f"{x['save_p95_ms']} ms | {x['save_embed_p50_ms']} ms | "
            f"{x['save_upsert_p50_ms']} ms | {x['save_query_p50_ms']} ms |"
            for x in r["runs"]
        ),
        "",
        "| backend | peak RSS of a process that loads it and encodes | libtorch mapped |",
        "| --- | --- | --- |",
        *(
            f"| `{name}` | {m['peak_mb']:.0f} MB | {'yes' if m['libtorch'] else 'no'} |"
            for name, m in r["memory"].items()
        ),
    ]
    facts = [
        'encoders: all-MiniLM-L6-v2; `st-onnx` = `SentenceTransformer(export, backend="onnx")`'
        " (the path before issue 29), `onnx` = onnxruntime + tokenizers on the same export, "
        "`onnx-int8` = its int8 model (storage/onnx_int8.py); spinning off as in the bot",
        f"encode: single-text p50/p95 over {SINGLES} texts (best of before and after the rate "
        f"passes), batched: {RATE_TEXTS} texts, 64 per batch, best of two; every figure the "
        "best of two rounds, the second in reverse order",
        f"save: {SAVES} sequential `save`s through the engine on fresh SQLite + embedded Chroma "
        f"per run; floor: one single-item Chroma upsert p50 = {r['chroma_one_ms']} ms",
    ]
    return Section(TITLE, command_line("bench.encoders", argv), facts, rows, tables=table)


def main() -> None:
    parser = parser_for(__doc__)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    setup_process()
    with tempfile.TemporaryDirectory(prefix="bench-encoders-") as tmp:
        work = Path(tmp)
        cache = Settings(_env_file=None).model_cache_path  # type: ignore[call-arg]
        configs = [(backend, threads) for threads in THREADS for backend in BACKENDS]
        rounds = []  # two rounds, the second in reverse order: drift hits every config alike
        for number, order in enumerate((configs, configs[::-1])):
            for backend, threads in order:
                run_dir = work / f"{backend}-{threads}-{number}"
                run_dir.mkdir()
                rounds.append(measure(backend, threads, cache, run_dir, args.quick))
        runs = [best_of([r for r in rounds if (r["backend"], r["threads"]) == c]) for c in configs]
        vectors = encoder("onnx", 1, cache)([make_text(random.Random(3)) for _ in range(64)])
        _, (chroma_one, _) = chroma_floor(work / "floor", more_vectors(vectors, 1000), 100)
        texts = 256 if args.quick else RATE_TEXTS
        mem = {name: memory(name, cache, texts) for name in BACKENDS}
    result = {"runs": runs, "memory": mem, "chroma_one_ms": round(chroma_one, 2)}
    replace_section(args.out, section(result, argv))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
