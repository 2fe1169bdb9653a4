"""Recall quality on the labelled sets of tests/data/recall_set.py: recall@1, recall@5 and MRR
of semantic-only, keyword-only and hybrid recall (real model, embedded Chroma, fresh database).

    python -m bench.recall_quality [--db postgres] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    Log,
    Row,
    Section,
    command_line,
    parser_for,
    replace_section,
    scratch_database,
    setup_process,
    warn_if_busy,
)
from engine.app import open_engine
from engine.settings import Settings
from tests.data.recall_eval import MODES, load, ranks, score
from tests.data.recall_set import (
    ENGLISH_NOTES,
    ENGLISH_QUESTIONS,
    MULTILINGUAL_NOTES,
    MULTILINGUAL_QUESTIONS,
)

log = Log("recall_quality")


async def run(url: str, work: Path) -> dict[str, Any]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        chroma_path=work / "chroma",
        chroma_url=None,
    )
    engine = await open_engine(settings)
    try:
        english = await load(engine, 1, ENGLISH_NOTES)
        multilingual = await load(engine, 2, MULTILINGUAL_NOTES)
        questions = [(q, key) for q, key, _ in ENGLISH_QUESTIONS]
        rare = [n for n, (*_, tag) in enumerate(ENGLISH_QUESTIONS) if tag == "rare"]
        sets: dict[str, dict[str, Any]] = {"english": {}, "english_rare": {}, "multilingual": {}}
        for mode in MODES:
            found = await ranks(engine, 1, questions, english, mode)
            sets["english"][mode] = score(found).as_dict()
            sets["english_rare"][mode] = score([found[n] for n in rare]).as_dict()
            found = await ranks(engine, 2, MULTILINGUAL_QUESTIONS, multilingual, mode)
            sets["multilingual"][mode] = score(found).as_dict()
            log(f"{mode} done")
        return {"db": engine.stores.dialect, "sets": sets}
    finally:
        await engine.aclose()


def section(r: dict[str, Any], argv: list[str]) -> Section:
    rows = []
    for name, by_mode in r["sets"].items():
        for mode, s in by_mode.items():
            rows.append(
                Row(
                    f"{name} (n={s['n']}), {mode}",
                    f"r@1 {s['recall@1']:.3f} · r@5 {s['recall@5']:.3f} · MRR {s['mrr']:.3f}",
                )
            )
    sets = r["sets"]
    for name in ("english", "english_rare", "multilingual"):
        hybrid, semantic = sets[name]["hybrid"], sets[name]["semantic"]
        rows.append(
            Row(
                f"{name}: hybrid ≥ semantic-only",
                f"r@1 {hybrid['recall@1']:.3f} vs {semantic['recall@1']:.3f}, "
                f"r@5 {hybrid['recall@5']:.3f} vs {semantic['recall@5']:.3f}",
                "hybrid ≥ semantic",
                hybrid["recall@1"] >= semantic["recall@1"]
                and hybrid["recall@5"] >= semantic["recall@5"],
            )
        )
    return Section(
        title=f"Recall quality (bench/recall_quality.py, --db {r['db']})",
        command=command_line("bench.recall_quality", argv),
        facts=[
            _sets_fact(),
            "model all-MiniLM-L6-v2 (English only), k = 5, floor 0.25; hybrid = cosine + 0.2 × "
            "IDF-weighted keyword coverage, hits under the floor only after those above it",
            "quality figures do not depend on machine load",
        ],
        rows=rows,
    )


def _sets_fact() -> str:
    """What the sets hold, counted from tests/data/recall_set.py."""
    tags = [tag for *_, tag in ENGLISH_QUESTIONS]
    return (
        f"sets: tests/data/recall_set.py — English: {len(ENGLISH_NOTES)} notes with look-alike "
        f"distractors, {len(ENGLISH_QUESTIONS)} questions ({tags.count('para')} paraphrased, "
        f"{tags.count('rare')} by a rare name, code or number); multilingual: "
        f"{len(MULTILINGUAL_NOTES)} Russian/Spanish/German/English notes, "
        f"{len(MULTILINGUAL_QUESTIONS)} questions in the notes' languages"
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-recall-", ignore_cleanup_errors=True) as tmp:
        async with scratch_database(args.db, Path(tmp)) as url:
            return await run(url, Path(tmp))


def cli() -> None:
    parser = parser_for(__doc__)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    setup_process()
    warn_if_busy(log)
    result = asyncio.run(main(args))
    replace_section(args.out, section(result, argv))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()
