"""The reminders outbox: scheduled rows claimed when due, marked once the send is done.

A claim moves due rows to `sending` under a lease in its own transaction (committed before
the send). On PostgreSQL it skips rows another worker holds (`FOR UPDATE SKIP LOCKED`); on
SQLite the unit of work holds the write lock. A row whose lease ran out (its worker died) is
claimed again. Every later change names the occurrence it finishes, so a stale worker's mark
changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import MemoryRow, ReminderRow

SCHEDULED, SENDING, DONE, CANCELLED, FAILED = "scheduled", "sending", "done", "cancelled", "failed"
OPEN = (SCHEDULED, SENDING)


@dataclass(frozen=True)
class ReminderView:
    """A reminder with its memory's text, as read."""

    id: int
    memory_id: uuid.UUID
    space_id: int
    topic_id: int | None
    user_id: int
    text: str
    due_at: datetime
    recurrence: str | None
    timezone: str
    status: str
    occurrence: int
    attempts: int


_COLUMNS = (
    ReminderRow.id,
    ReminderRow.memory_id,
    ReminderRow.space_id,
    ReminderRow.topic_id,
    ReminderRow.user_id,
    MemoryRow.text,
    ReminderRow.due_at,
    ReminderRow.recurrence,
    ReminderRow.timezone,
    ReminderRow.status,
    ReminderRow.occurrence,
    ReminderRow.attempts,
)


class ReminderRepository:
    """Typed queries over the reminders table."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, row: ReminderRow) -> None:
        self._session.add(row)

    async def views(self, *conditions: Any, limit: int = 50) -> list[ReminderView]:
        query = (
            select(*_COLUMNS)
            .join(MemoryRow, MemoryRow.id == ReminderRow.memory_id)
            .where(*conditions)
            .order_by(ReminderRow.due_at, ReminderRow.id)
            .limit(limit)
        )
        return [ReminderView(**row._mapping) for row in await self._session.execute(query)]

    async def get(self, reminder_id: int, *, space_id: int) -> ReminderView | None:
        found = await self.views(ReminderRow.id == reminder_id, ReminderRow.space_id == space_id)
        return found[0] if found else None

    async def upcoming(
        self, *, space_id: int, user_id: int | None, limit: int
    ) -> list[ReminderView]:
        """Open reminders of a space (of one user's when `user_id` is given), soonest first."""
        conditions = [ReminderRow.space_id == space_id, ReminderRow.status.in_(OPEN)]
        if user_id is not None:
            conditions.append(ReminderRow.user_id == user_id)
        return await self.views(*conditions, limit=limit)

    async def claim(
        self, *, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[ReminderView]:
        """Lease up to `limit` due rows (scheduled, or sending with a lapsed lease)."""
        free = or_(ReminderRow.lease_until.is_(None), ReminderRow.lease_until < now)
        due = or_(
            and_(ReminderRow.status == SCHEDULED, ReminderRow.due_at <= now, free),
            and_(ReminderRow.status == SENDING, ReminderRow.lease_until < now),
        )
        ids = list(
            await self._session.scalars(
                select(ReminderRow.id)
                .where(due)
                .order_by(ReminderRow.due_at, ReminderRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return []
        await self._session.execute(
            update(ReminderRow)
            .where(ReminderRow.id.in_(ids))
            .values(status=SENDING, owner=owner, lease_until=lease_until)
        )
        return await self.views(ReminderRow.id.in_(ids), limit=limit)

    async def renew(self, *, owner: str, lease_until: datetime) -> None:
        """Extend every lease `owner` holds."""
        await self._session.execute(
            update(ReminderRow)
            .where(ReminderRow.owner == owner, ReminderRow.status == SENDING)
            .values(lease_until=lease_until)
        )

    async def release_all(self) -> int:
        """Void every claim (a single-process store at start: nobody else holds one)."""
        result = await self._session.execute(
            update(ReminderRow)
            .where(ReminderRow.status == SENDING)
            .values(status=SCHEDULED, owner=None, lease_until=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def finish(
        self, reminder_id: int, *, occurrence: int, owner: str, values: dict[str, Any]
    ) -> bool:
        """Apply `values` to a row `owner` still holds for `occurrence`; False if it does not."""
        result = await self._session.execute(
            update(ReminderRow)
            .where(
                ReminderRow.id == reminder_id,
                ReminderRow.occurrence == occurrence,
                ReminderRow.owner == owner,
                ReminderRow.status == SENDING,
            )
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def change(
        self, reminder_id: int, *, space_id: int, statuses: Sequence[str], values: dict[str, Any]
    ) -> bool:
        """Apply `values` to a row of `space_id` in one of `statuses`; False if there is none."""
        result = await self._session.execute(
            update(ReminderRow)
            .where(
                ReminderRow.id == reminder_id,
                ReminderRow.space_id == space_id,
                ReminderRow.status.in_(statuses),
            )
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def next_due(self) -> datetime | None:
        """When the soonest scheduled reminder is due, or the soonest claim lapses."""
        later = ReminderRow.lease_until > ReminderRow.due_at  # a retry's backoff
        start = case((later, ReminderRow.lease_until), else_=ReminderRow.due_at)
        due = await self._session.scalar(
            select(func.min(start)).where(ReminderRow.status == SCHEDULED)
        )
        lapse = await self._session.scalar(
            select(func.min(ReminderRow.lease_until)).where(ReminderRow.status == SENDING)
        )
        return min((t for t in (due, lapse) if t is not None), default=None)
