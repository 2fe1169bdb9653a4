"""The intake ledger: which updates were handled, and which were parked as dead letters."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.clock import utcnow
from engine.errors import AlreadyExists
from engine.stores import Stores

KEEP_PROCESSED = timedelta(days=2)


@dataclass(frozen=True)
class DeadLetter:
    """An update that kept failing, kept with its raw JSON so it can be replayed."""

    id: int
    update_id: int
    chat_id: int | None
    raw: dict[str, Any]
    error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None


class UpdateLedger:
    """Remembers processed update ids for a while and keeps updates that kept failing."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    async def seen(self, update_id: int) -> bool:
        """True if `update_id` was handled before."""
        return bool(await self.seen_many([update_id]))

    async def seen_many(self, update_ids: Sequence[int]) -> set[int]:
        """Which of `update_ids` were handled before."""
        if not update_ids:
            return set()
        async with self.stores.reading() as repos:
            return await repos.processed_updates.seen(update_ids)

    async def mark_many(self, update_ids: Sequence[int]) -> None:
        """Record a processed batch in one transaction (ids already there are skipped)."""
        fresh = set(update_ids) - await self.seen_many(update_ids)
        if not fresh:
            return
        try:
            async with self.stores.unit_of_work("mark_updates") as uow:
                uow.processed_updates.add(sorted(fresh))
        except AlreadyExists:  # another worker marked some meanwhile: one by one
            for update_id in sorted(fresh):
                await self.mark(update_id)

    async def mark(self, update_id: int) -> None:
        """Record `update_id` as handled (a second call is a no-op)."""
        with contextlib.suppress(AlreadyExists):
            async with self.stores.unit_of_work("mark_update") as uow:
                uow.processed_updates.add([update_id])

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
        async with self.stores.unit_of_work("park_update") as uow:
            letter = await uow.dead_letters.add(
                update_id=update_id, chat_id=chat_id, raw=raw, error=error, attempts=attempts
            )
            letter_id = letter.id
            if not await uow.processed_updates.seen([update_id]):
                uow.processed_updates.add([update_id])
        return letter_id

    async def dead_letters(
        self, *, pending_only: bool = True, limit: int = 50
    ) -> list[DeadLetter]:
        """The latest dead letters, newest first (only those not replayed yet by default)."""
        async with self.stores.reading() as repos:
            rows = await repos.dead_letters.latest(pending_only=pending_only, limit=limit)
            return [
                DeadLetter(
                    id=row.id,
                    update_id=row.update_id,
                    chat_id=row.chat_id,
                    raw=row.raw,
                    error=row.error,
                    attempts=row.attempts,
                    created_at=row.created_at,
                    replayed_at=row.replayed_at,
                )
                for row in rows
            ]

    async def mark_replayed(self, letter_id: int) -> None:
        """Note that dead letter `letter_id` went through the bot again."""
        async with self.stores.unit_of_work("mark_replayed") as uow:
            await uow.dead_letters.mark_replayed(letter_id)

    async def prune(self, *, older_than: timedelta = KEEP_PROCESSED) -> int:
        """Forget processed ids older than `older_than` (Telegram redelivers for ~24 h)."""
        async with self.stores.unit_of_work("prune_updates") as uow:
            return await uow.processed_updates.prune(before=utcnow() - older_than)
