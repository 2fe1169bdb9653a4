"""Keyword search for a user with 2,000 memories: the old `LOWER(text) LIKE '%w%'` scan against
the keyword index of migration 0008 (FTS5 / tsvector + GIN), on SQLite or PostgreSQL.

One heavy user holds 2,000 memories and 50 other users 40 each (the index is shared by all).
Each of 200 queries is timed once per implementation, alternating, on a warm database: the old
query exactly as engine/memory_reads.py ran it before #11 (English stopwords, unranked
substring match, up to 10 rows), and the new keyword step of recall (per-term document counts
for the IDF weights, then the ranked index search, up to 20 rows).

    python -m bench.keyword [--db postgres] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Integer, case, func, literal, or_, select

from bench.common import (
    Log,
    Row,
    Section,
    command_line,
    parser_for,
    replace_section,
    scratch_database,
    setup_process,
    spread,
    warn_if_busy,
)
from engine.ranking import query_terms, selective
from storage import migrate
from storage.db import open_database
from storage.models import MemoryRow, UserRow, utcnow
from storage.repositories.memories import MemoryRepository, is_live

HEAVY, OTHERS, PER_OTHER, QUERIES = 2_000, 50, 40, 200
HEAVY_USER = 1
COMMON = "the a is in at on my to of for and with by from it this that".split()  # noqa: SIM905
SYLLABLES = "ka ri to ne sa mo lu pe di ga vo ze bra sch ä ö ü é ñ па ро ки ле".split()  # noqa: SIM905
VOCABULARY = 5_000
OLD_STOPWORDS = frozenset(
    "the and for are was were you your with that this from have has had not but what when "  # noqa: SIM905
    "where which who why how did does can could would should about into there their them "
    "they our out all any some my me mine its it's i'm".split()
)
log = Log("keyword")


def old_keywords(query: str, limit: int = 6) -> list[str]:
    """engine/ranking.py `keywords` before #11."""
    words = [
        w for w in re.findall(r"\w+", query.lower()) if len(w) >= 3 and w not in OLD_STOPWORDS
    ]
    return list(dict.fromkeys(words))[:limit]


def vocabulary(rng: random.Random) -> list[str]:
    """Made-up words in several scripts, used with Zipf-like frequencies (rank r: 1 / r)."""
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def note(rng: random.Random, words: list[str], weights: list[float]) -> str:
    """A note of 6-14 words: about a third common words, the rest from the vocabulary."""
    size = rng.randint(6, 14)
    content = rng.choices(words, weights=weights, k=size - size // 3)
    return " ".join(content + rng.sample(COMMON, size // 3))


async def run(url: str) -> dict[str, Any]:
    rng = random.Random(11)
    words = vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    db = open_database(url)
    try:
        await migrate.upgrade(db.write_engine)
        now = utcnow()
        owners = [HEAVY_USER] * HEAVY + [100 + u for u in range(OTHERS) for _ in range(PER_OTHER)]
        async with db.writes() as session:
            session.add_all(UserRow(id=u, role="user") for u in {*owners})
            session.add_all(
                MemoryRow(id=uuid.uuid4(), space_id=o, author_id=o, text=note(rng, words, weights))
                for o in owners
            )
            await session.commit()
        log(f"{len(owners)} memories written ({HEAVY} for the heavy user)")
        queries = [
            " ".join(
                [rng.choice(COMMON), *rng.choices(words, weights=weights, k=rng.randint(1, 3))]
            )
            for _ in range(QUERIES)
        ]
        old_ms: list[float] = []
        new_ms: list[float] = []
        search_ms: list[float] = []
        for query in queries:
            async with db.reads() as session:
                start = time.perf_counter()
                await old_search(session, query, now)
                old_ms.append((time.perf_counter() - start) * 1000)
            async with db.reads() as session:
                start = time.perf_counter()
                repo = MemoryRepository(session)
                terms = query_terms(query)
                counts = await repo.term_counts(space_id=HEAVY_USER, terms=terms)
                searched = time.perf_counter()
                await repo.keyword_search(
                    space_id=HEAVY_USER, terms=selective(counts, HEAVY), now=now, limit=20
                )
                new_ms.append((time.perf_counter() - start) * 1000)
                search_ms.append((time.perf_counter() - searched) * 1000)
        return {
            "db": db.dialect,
            "memories": len(owners),
            "heavy": HEAVY,
            "queries": QUERIES,
            "old_like_ms": spread(old_ms),
            "index_ms": spread(new_ms),
            "index_search_only_ms": spread(search_ms),
        }
    finally:
        await db.dispose()


async def old_search(session: Any, query: str, now: Any) -> list[MemoryRow]:
    """The keyword query of engine/memory_reads.py before #11, reproduced."""
    terms = old_keywords(query)
    if not terms:
        return []
    lowered = func.lower(MemoryRow.text)
    matches = [lowered.contains(term.lower(), autoescape=True) for term in terms]
    score = sum((case((m, 1), else_=0) for m in matches), start=literal(0, Integer))
    rows = await session.scalars(
        select(MemoryRow)
        .where(MemoryRow.space_id == HEAVY_USER, is_live(now), or_(*matches))
        .order_by(score.desc(), MemoryRow.created_at.desc())
        .limit(10)
    )
    return list(rows)


def section(r: dict[str, Any], argv: list[str]) -> Section:
    old, new = r["old_like_ms"], r["index_ms"]
    return Section(
        title=f"Keyword search (bench/keyword.py, --db {r['db']})",
        command=command_line("bench.keyword", argv),
        facts=[
            f"{r['memories']} memories, one user holding {r['heavy']}; {r['queries']} queries "
            "of 2-4 words, each run once per implementation, alternating, warm database",
            "old: `LOWER(text) LIKE '%w%'` over the user's rows (English stopwords, unranked); "
            "new: per-term document counts (IDF) + the ranked index search, as recall runs it",
        ],
        rows=[
            Row("old LIKE scan p50 / p95", f"{old['p50']} / {old['p95']} ms"),
            Row("keyword index p50 / p95 (counts + search)", f"{new['p50']} / {new['p95']} ms"),
            Row(
                "of which the ranked search p50 / p95",
                f"{r['index_search_only_ms']['p50']} / {r['index_search_only_ms']['p95']} ms",
            ),
            Row("speed-up at p50", f"{old['p50'] / max(new['p50'], 1e-9):.1f}×"),
        ],
    )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-keyword-", ignore_cleanup_errors=True) as tmp:
        async with scratch_database(args.db, Path(tmp)) as url:
            return await run(url)


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
