"""Keyword search over the index of migration 0008: whole words, ranked, on both dialects.

Query words are folded and split the way the index folds and splits memory text (see
storage.keyword_ddl), then passed to FTS5 MATCH (SQLite) or `to_tsquery('simple', ...)`
(PostgreSQL) as quoted terms: user input never reaches the query syntax. A term of PREFIX_MIN
characters or more also matches words it begins ("паспорт" finds "паспорта"); shorter terms
match whole words only, and no term matches inside a word ("call" never finds "recall").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    String,
    bindparam,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
    text,
    union_all,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import keyword_ddl as ddl
from storage.models import MemoryRow

PREFIX_MIN = 4
WORD = re.compile(r"[^\W_]+")
_FOLD = str.maketrans(ddl.FOLD_FROM, ddl.FOLD_TO)
_FTS = table(ddl.FTS_TABLE, column("rowid", Integer))
_ROWID = literal_column(f"{MemoryRow.__tablename__}.rowid", Integer)


def fold(value: str) -> str:
    """`value` lower-cased with diacritics removed, as the index folds it ("Café" → "cafe")."""
    return unicodedata.normalize("NFC", value).lower().translate(_FOLD)


def words(value: str) -> list[str]:
    """The folded words of `value` in order: runs of letters and digits (any script)."""
    return WORD.findall(fold(value))


def _sqlite_query(terms: Sequence[str]) -> str:
    def quote(term: str) -> str:
        escaped = term.replace('"', '""')
        return f'"{escaped}"' + ("*" if len(term) >= PREFIX_MIN else "")

    return " OR ".join(quote(t) for t in terms)


def _pg_query(terms: Sequence[str]) -> str:
    def quote(term: str) -> str:
        escaped = term.replace("\\", "\\\\").replace("'", "''")
        return f"'{escaped}'" + (":*" if len(term) >= PREFIX_MIN else "")

    return " | ".join(quote(t) for t in terms)


@dataclass(frozen=True)
class _Match:
    source: FromClause
    condition: ColumnElement[bool]
    rank: ColumnElement[float]
    alone: ColumnElement[bool]  # the same rows, over `memories` alone (no rank)


def _match(dialect: str, terms: Sequence[str], name: str = "keyword_query") -> _Match:
    """Where the matches come from, which rows match any of `terms`, and their rank."""
    if dialect == "sqlite":
        query = bindparam(name, _sqlite_query(terms), type_=String)
        fts: ColumnElement[Any] = literal_column(ddl.FTS_TABLE)
        matches = fts.op("MATCH")(query)
        return _Match(
            _FTS.join(MemoryRow.__table__, _FTS.c.rowid == _ROWID),
            matches,
            -func.bm25(fts),  # bm25() is smaller for better matches
            # a subquery: joined, SQLite may probe the index once per row of the space
            _ROWID.in_(select(_FTS.c.rowid).where(matches)),
        )
    vector: ColumnElement[Any] = literal_column(f"{MemoryRow.__tablename__}.{ddl.PG_COLUMN}")
    # a scalar subquery: the query is parsed once, not once per row (generic plans)
    tsquery = select(
        func.to_tsquery(
            literal_column("'simple'::regconfig"),
            func.memorybot_fold(bindparam(name, _pg_query(terms), type_=String)),
        )
    ).scalar_subquery()
    matches = vector.op("@@")(tsquery)
    return _Match(MemoryRow.__table__, matches, func.ts_rank(vector, tsquery), matches)


async def search(
    session: AsyncSession,
    *,
    terms: Sequence[str],
    where: Sequence[ColumnElement[bool]],
    limit: int,
) -> list[tuple[MemoryRow, float]]:
    """Rows matching any of `terms` (and `where`) with their bm25 / ts_rank, best first."""
    if not terms or limit <= 0:
        return []
    match = _match(session.get_bind().dialect.name, terms)
    rank = match.rank.label("keyword_rank")
    rows = await session.execute(
        select(MemoryRow, rank)
        .select_from(match.source)
        .where(match.condition, *where)
        .order_by(rank.desc(), MemoryRow.created_at.desc())
        .limit(limit)
    )
    return [(row, float(score)) for row, score in rows.tuples()]


async def document_counts(
    session: AsyncSession, *, terms: Sequence[str], where: Sequence[ColumnElement[bool]]
) -> dict[str, int]:
    """How many rows (of `where`) each term matches, in one round trip (for IDF weights)."""
    if not terms:
        return {}
    dialect = session.get_bind().dialect.name
    parts = []
    for n, term in enumerate(terms):
        match = _match(dialect, [term], name=f"term_{n}")
        parts.append(
            select(literal(n, Integer).label("n"), func.count().label("docs"))
            .select_from(MemoryRow.__table__)
            .where(match.alone, *where)
        )
    rows = await session.execute(union_all(*parts))
    return {terms[int(n)]: int(docs) for n, docs in rows.tuples()}


@dataclass(frozen=True)
class KeywordDrift:
    """Rows the index misses, index entries without their row, and anything else wrong."""

    missing: int = 0
    stale: int = 0
    problems: tuple[str, ...] = ()


async def drift(session: AsyncSession, *, space_id: int | None) -> KeywordDrift:
    """Compare the keyword index with the rows (one space, or all: then entries without a row
    and missing triggers are counted too)."""
    in_space = "" if space_id is None else f" AND m.space_id = {int(space_id)}"
    if session.get_bind().dialect.name != "sqlite":
        missing = await session.scalar(
            text(f"SELECT count(*) FROM memories m WHERE m.{ddl.PG_COLUMN} IS NULL{in_space}")
        )
        return KeywordDrift(missing=int(missing or 0))
    missing = await session.scalar(
        text(
            f"SELECT count(*) FROM memories m WHERE NOT EXISTS (SELECT 1 FROM "
            f"{ddl.FTS_TABLE}_docsize d WHERE d.id = m.rowid){in_space}"
        )
    )
    if space_id is not None:
        return KeywordDrift(missing=int(missing or 0))
    stale = await session.scalar(
        text(
            f"SELECT count(*) FROM {ddl.FTS_TABLE}_docsize d WHERE NOT EXISTS "
            "(SELECT 1 FROM memories m WHERE m.rowid = d.id)"
        )
    )
    names = set(await session.scalars(text("SELECT name FROM sqlite_master WHERE type='trigger'")))
    problems = tuple(f"trigger {t} is missing" for t in ddl.SQLITE_TRIGGERS if t not in names)
    return KeywordDrift(int(missing or 0), int(stale or 0), problems)


async def content_matches(session: AsyncSession) -> bool:
    """SQLite: FTS5's own integrity check of the index against the rows' text (a write
    statement that changes nothing: run it in a write session and roll back). PostgreSQL:
    the generated column cannot differ from its text, so always True."""
    if session.get_bind().dialect.name != "sqlite":
        return True
    try:
        await session.execute(
            text(
                f"INSERT INTO {ddl.FTS_TABLE}({ddl.FTS_TABLE}, rank) VALUES ('integrity-check', 1)"
            )
        )
    except DBAPIError:
        return False
    return True


async def rebuild(session: AsyncSession) -> None:
    """SQLite: re-create missing triggers and rebuild the index from the rows (the caller
    commits). PostgreSQL: nothing to do, the generated column is always current."""
    if session.get_bind().dialect.name != "sqlite":
        return
    for statement in (*ddl.SQLITE_TRIGGER_DDL, ddl.SQLITE_REBUILD):
        await session.execute(text(statement))
