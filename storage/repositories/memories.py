"""The memories table: typed queries over one AsyncSession; the unit of work owns the commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

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
        self, *, space_id: int, now: datetime, limit: int, offset: int
    ) -> list[MemoryRow]:
        """Live memories of `space_id`, newest first."""
        rows = await self._session.scalars(
            select(MemoryRow)
            .where(MemoryRow.space_id == space_id, is_live(now))
            .order_by(MemoryRow.created_at.desc(), MemoryRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(rows)

    async def count(self, *, space_id: int, now: datetime) -> int:
        """How many live memories `space_id` holds."""
        total = await self._session.scalar(
            select(func.count()).where(MemoryRow.space_id == space_id, is_live(now))
        )
        return int(total or 0)

    async def count_all(self) -> int:
        """How many memory rows there are, expired ones included."""
        return int(await self._session.scalar(select(func.count()).select_from(MemoryRow)) or 0)

    async def live(
        self, *, ids: Sequence[uuid.UUID], space_id: int, now: datetime
    ) -> dict[uuid.UUID, MemoryRow]:
        """The live memories among `ids` that belong to `space_id`."""
        if not ids:
            return {}
        rows = await self._session.scalars(
            select(MemoryRow).where(
                MemoryRow.id.in_(ids), MemoryRow.space_id == space_id, is_live(now)
            )
        )
        return {row.id: row for row in rows}

    async def keyword_search(
        self, *, space_id: int, terms: Sequence[str], now: datetime, limit: int
    ) -> list[MemoryRow]:
        """Live memories containing any of `terms` (case-insensitive), most matched first."""
        if not terms:
            return []
        lowered = func.lower(MemoryRow.text)
        matches = [lowered.contains(term.lower(), autoescape=True) for term in terms]
        score = sum((case((match, 1), else_=0) for match in matches), start=literal(0, Integer))
        rows = await self._session.scalars(
            select(MemoryRow)
            .where(MemoryRow.space_id == space_id, is_live(now), or_(*matches))
            .order_by(score.desc(), MemoryRow.created_at.desc())
            .limit(limit)
        )
        return list(rows)

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
