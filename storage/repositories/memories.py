"""The memories table: typed queries over one AsyncSession; the unit of work owns the commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    String,
    cast,
    delete,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage import keyword_index
from storage.filters import NO_FILTER, MemoryFilter, filter_clause
from storage.models import MemoryRow

IndexRow = tuple[uuid.UUID, int, str, datetime, datetime | None]


def is_live(now: datetime) -> ColumnElement[bool]:
    """Rows that have not expired at `now`."""
    return or_(MemoryRow.expires_at.is_(None), MemoryRow.expires_at > now)


class MemoryRepository:
    """Memory rows; every lookup a chat triggers is scoped to its space."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, row: MemoryRow) -> None:
        self._session.add(row)

    async def remove(self, row: MemoryRow) -> None:
        await self._session.delete(row)

    async def by_source(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], MemoryRow]:
        """Memories made from the given (chat_id, message_id) pairs."""
        if not keys:
            return {}
        rows = await self._session.scalars(
            select(MemoryRow).where(tuple_(MemoryRow.chat_id, MemoryRow.message_id).in_(set(keys)))
        )
        return {(row.chat_id, row.message_id): row for row in rows}  # type: ignore[misc]

    async def get(self, *, memory_id: uuid.UUID, space_id: int, now: datetime) -> MemoryRow | None:
        """One live memory of `space_id`, or None (another space's memory is never returned)."""
        return await self._session.scalar(
            select(MemoryRow).where(
                MemoryRow.id == memory_id, MemoryRow.space_id == space_id, is_live(now)
            )
        )

    async def page(
        self,
        *,
        space_id: int,
        now: datetime,
        limit: int,
        offset: int,
        wanted: MemoryFilter = NO_FILTER,
    ) -> list[MemoryRow]:
        """Live memories of `space_id` that `wanted` keeps, newest first."""
        rows = await self._session.scalars(
            select(MemoryRow)
            .where(MemoryRow.space_id == space_id, is_live(now), filter_clause(wanted))
            .order_by(MemoryRow.created_at.desc(), MemoryRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(rows)

    async def count(
        self, *, space_id: int, now: datetime, wanted: MemoryFilter = NO_FILTER
    ) -> int:
        """How many live memories `space_id` holds (that `wanted` keeps)."""
        total = await self._session.scalar(
            select(func.count()).where(
                MemoryRow.space_id == space_id, is_live(now), filter_clause(wanted)
            )
        )
        return int(total or 0)

    async def count_all(self) -> int:
        """How many memory rows there are, expired ones included."""
        return int(await self._session.scalar(select(func.count()).select_from(MemoryRow)) or 0)

    async def live(
        self,
        *,
        ids: Sequence[uuid.UUID],
        space_id: int,
        now: datetime,
        wanted: MemoryFilter = NO_FILTER,
    ) -> dict[uuid.UUID, MemoryRow]:
        """The live memories among `ids` that belong to `space_id` (and `wanted` keeps)."""
        if not ids:
            return {}
        rows = await self._session.scalars(
            select(MemoryRow).where(
                MemoryRow.id.in_(ids),
                MemoryRow.space_id == space_id,
                is_live(now),
                filter_clause(wanted),
            )
        )
        return {row.id: row for row in rows}

    async def keyword_search(
        self,
        *,
        space_id: int,
        terms: Sequence[str],
        now: datetime,
        limit: int,
        wanted: MemoryFilter = NO_FILTER,
    ) -> list[tuple[MemoryRow, float]]:
        """Live memories of `space_id` (that `wanted` keeps) holding any of `terms` as a whole
        word (or, for longer terms, a word they begin), with their bm25 / ts_rank, best first.

        `terms` are folded words (storage.keyword_index.words); the keyword index answers.
        """
        where = [MemoryRow.space_id == space_id, is_live(now), filter_clause(wanted)]
        return await keyword_index.search(self._session, terms=terms, where=where, limit=limit)

    async def term_counts(self, *, space_id: int, terms: Sequence[str]) -> dict[str, int]:
        """How many memories of `space_id` (expired ones too) each of `terms` matches."""
        where = [MemoryRow.space_id == space_id]
        return await keyword_index.document_counts(self._session, terms=terms, where=where)

    async def index(self, *, space_id: int | None) -> list[IndexRow]:
        """(id, space_id, text, created_at, expires_at) of every memory, expired ones included."""
        query = select(
            MemoryRow.id,
            MemoryRow.space_id,
            MemoryRow.text,
            MemoryRow.created_at,
            MemoryRow.expires_at,
        )
        if space_id is not None:
            query = query.where(MemoryRow.space_id == space_id)
        return [tuple(row) for row in await self._session.execute(query)]  # type: ignore[misc]

    async def with_ids(
        self, ids: Sequence[uuid.UUID], *, lock: bool = False
    ) -> dict[uuid.UUID, MemoryRow]:
        """The rows among `ids` (expired ones too); `lock` takes their write lock."""
        if not ids:
            return {}
        query = select(MemoryRow).where(MemoryRow.id.in_(list(ids)))
        if lock:
            query = query.with_for_update()
        return {row.id: row for row in await self._session.scalars(query)}

    async def delete(self, ids: Sequence[uuid.UUID]) -> int:
        """Delete the rows with `ids`; returns how many there were."""
        if not ids:
            return 0
        result = await self._session.execute(delete(MemoryRow).where(MemoryRow.id.in_(ids)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def ids_in_space(self, space_id: int) -> list[uuid.UUID]:
        """Every memory id of `space_id`, expired ones included."""
        query = select(MemoryRow.id).where(MemoryRow.space_id == space_id)
        return list(await self._session.scalars(query))

    async def texts_present(
        self, *, space_id: int, texts: Sequence[str], now: datetime
    ) -> set[str]:
        """Which of `texts` a live memory of `space_id` holds exactly (one query; /import)."""
        if not texts:
            return set()
        query = select(MemoryRow.text).where(
            MemoryRow.space_id == space_id, is_live(now), MemoryRow.text.in_(set(texts))
        )
        return set(await self._session.scalars(query))

    async def by_prefix(self, *, space_id: int, prefix: str, now: datetime) -> list[MemoryRow]:
        """Live memories of `space_id` whose hex id starts with `prefix` (at most two)."""
        head = prefix[:8]  # the first 8 hex digits read the same in every dialect's text form
        rows = await self._session.scalars(
            select(MemoryRow)
            .where(
                MemoryRow.space_id == space_id,
                is_live(now),
                cast(MemoryRow.id, String).like(f"{head}%"),
            )
            .limit(50)
        )
        return [row for row in rows if row.id.hex.startswith(prefix)][:2]

    async def due(self, *, now: datetime, limit: int) -> list[MemoryRow]:
        """Up to `limit` expired rows, locked; rows another writer holds are skipped."""
        rows = await self._session.scalars(
            select(MemoryRow)
            .where(MemoryRow.expires_at <= now)
            .order_by(MemoryRow.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)
