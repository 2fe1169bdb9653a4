"""Dead letters: updates that kept failing while the stores were healthy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import DeadLetterRow, utcnow


class DeadLetterRepository:
    """Updates parked with their raw JSON and error, to be replayed."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(
        self,
        *,
        update_id: int,
        chat_id: int | None,
        raw: dict[str, Any],
        error: str,
        attempts: int,
    ) -> DeadLetterRow:
        row = DeadLetterRow(
            update_id=update_id, chat_id=chat_id, raw=raw, error=error[:4000], attempts=attempts
        )
        self._session.add(row)
        await self._session.flush()
        return row

    async def latest(self, *, pending_only: bool, limit: int) -> list[DeadLetterRow]:
        query = select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)
        if pending_only:
            query = query.where(DeadLetterRow.replayed_at.is_(None))
        return list(await self._session.scalars(query))

    async def count_pending(self) -> int:
        query = select(func.count()).where(DeadLetterRow.replayed_at.is_(None))
        return int(await self._session.scalar(query) or 0)

    async def purge_chat(self, chat_id: int) -> int:
        """Delete the dead letters of `chat_id` (after /forget_all: they may hold its texts)."""
        result = await self._session.execute(
            delete(DeadLetterRow).where(DeadLetterRow.chat_id == chat_id)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def mark_replayed(self, letter_id: int) -> None:
        row = await self._session.get(DeadLetterRow, letter_id)
        if row is not None:
            row.replayed_at = utcnow()
