"""Dead letters: updates that kept failing while the stores were healthy, kept to replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.lanes import lane_of
from engine.clock import utcnow
from engine.inbox import PARKED, Received
from engine.stores import Stores


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
    """Parks updates that kept failing, lists them, and hands them back to the inbox."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    async def park(
        self,
        *,
        update_id: int,
        chat_id: int | None,
        raw: dict[str, Any],
        error: str,
        attempts: int,
    ) -> int:
        """Keep a failing update and mark its inbox row parked. Returns the letter's id."""
        async with self.stores.unit_of_work("park_update") as uow:
            letter = await uow.dead_letters.add(
                update_id=update_id, chat_id=chat_id, raw=raw, error=error, attempts=attempts
            )
            letter_id = letter.id
            await uow.inbox.finish([update_id], status=PARKED, now=utcnow())
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

    async def requeue(self, letter: DeadLetter) -> None:
        """Hand a dead letter back to the inbox (pending again, attempts reset) and note it
        as replayed, in one transaction."""
        async with self.stores.unit_of_work("requeue_update") as uow:
            await uow.inbox.requeue(
                Received(letter.update_id, lane_of(letter.raw), letter.raw), now=utcnow()
            )
            await uow.dead_letters.mark_replayed(letter.id)
