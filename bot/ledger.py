"""The intake ledger: which updates were handled, and which were parked as dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import DeadLetterRow, ProcessedUpdateRow, utcnow

KEEP_PROCESSED = timedelta(days=2)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    update_id: int
    chat_id: int | None
    raw: dict[str, Any]
    error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None

    @classmethod
    def from_row(cls, row: DeadLetterRow) -> DeadLetter:
        return cls(
            row.id,
            row.update_id,
            row.chat_id,
            row.raw,
            row.error,
            row.attempts,
            row.created_at,
            row.replayed_at,
        )


class UpdateLedger:
    """Remembers processed update ids for a while and keeps updates that kept failing."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def seen(self, update_id: int) -> bool:
        async with self.db.reads() as session:
            return await session.get(ProcessedUpdateRow, update_id) is not None

    async def seen_many(self, update_ids: Sequence[int]) -> set[int]:
        """Which of `update_ids` were handled before."""
        if not update_ids:
            return set()
        async with self.db.reads() as session:
            rows = await session.scalars(
                select(ProcessedUpdateRow.update_id).where(
                    ProcessedUpdateRow.update_id.in_(update_ids)
                )
            )
            return set(rows)

    async def mark_many(self, update_ids: Sequence[int]) -> None:
        """Record a processed batch in one transaction (ids already there are skipped)."""
        fresh = set(update_ids) - await self.seen_many(update_ids)
        if not fresh:
            return
        async with self.db.writes() as session:
            session.add_all(ProcessedUpdateRow(update_id=i) for i in sorted(fresh))
            try:
                await session.commit()
            except IntegrityError:  # another worker marked some meanwhile: one by one
                await session.rollback()
            else:
                return
        for update_id in fresh:
            await self.mark(update_id)

    async def mark(self, update_id: int) -> None:
        """Record `update_id` as handled (a second call is a no-op)."""
        async with self.db.writes() as session:
            session.add(ProcessedUpdateRow(update_id=update_id))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()

    async def park(
        self,
        *,
        update_id: int,
        chat_id: int | None,
        raw: dict[str, Any],
        error: str,
        attempts: int,
    ) -> int:
        """Keep a failing update (and mark it handled so intake moves on). Returns its id."""
        async with self.db.writes() as session:
            row = DeadLetterRow(
                update_id=update_id,
                chat_id=chat_id,
                raw=raw,
                error=error[:4000],
                attempts=attempts,
            )
            session.add(row)
            if await session.get(ProcessedUpdateRow, update_id) is None:
                session.add(ProcessedUpdateRow(update_id=update_id))
            await session.commit()
            return row.id

    async def dead_letters(
        self, *, pending_only: bool = True, limit: int = 50
    ) -> list[DeadLetter]:
        query = select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)
        if pending_only:
            query = query.where(DeadLetterRow.replayed_at.is_(None))
        async with self.db.reads() as session:
            return [DeadLetter.from_row(row) for row in await session.scalars(query)]

    async def mark_replayed(self, letter_id: int) -> None:
        async with self.db.writes() as session:
            row = await session.get(DeadLetterRow, letter_id)
            if row is not None:
                row.replayed_at = utcnow()
                await session.commit()

    async def prune(self, *, older_than: timedelta = KEEP_PROCESSED) -> int:
        """Forget processed ids older than `older_than` (Telegram redelivers for ~24 h)."""
        async with self.db.writes() as session:
            result = await session.execute(
                delete(ProcessedUpdateRow).where(
                    ProcessedUpdateRow.processed_at < utcnow() - older_than
                )
            )
            await session.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]
