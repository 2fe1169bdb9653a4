"""The reminder outbox's delivery half: claim what is due, then mark each send's outcome.

Exactly once per occurrence, as far as a process can promise it: the claim (status sending,
an owner and a lease) is committed before the send, and the mark right after Telegram
accepted the message, naming the occurrence it finishes. A claimer that dies before sending
leaves a lease that runs out (or, on a single-process SQLite store, is voided at the next
start) and the next claimer sends it. The one window left is a death after Telegram accepted
the message and before the mark committed: that occurrence is sent again (at least once).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.clock import utcnow
from engine.schedule import Recurrence
from engine.stores import Stores
from engine.zones import zone
from storage.repositories.reminders import (
    DONE,
    FAILED,
    SCHEDULED,
    ReminderRepository,
    ReminderView,
)

LATE_AFTER = timedelta(seconds=60)
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Reminder:
    """A reminder as read: what, where, when (UTC) and in which zone it was set."""

    id: int
    memory_id: uuid.UUID
    space_id: int
    topic_id: int | None
    user_id: int
    text: str
    due_at: datetime
    recurrence: Recurrence | None
    timezone: str
    status: str
    occurrence: int
    attempts: int

    @classmethod
    def of(cls, view: ReminderView) -> Reminder:
        recurrence = Recurrence.decode(view.recurrence) if view.recurrence else None
        return cls(**{**view.__dict__, "recurrence": recurrence})

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    def late(self, now: datetime) -> bool:
        """Sent more than a minute after it was due (e.g. the bot was down)."""
        return now - self.due_at > LATE_AFTER


class ReminderOutbox:
    """One process's claims on the reminders outbox (its leases carry `owner`)."""

    def __init__(self, stores: Stores, *, lease_s: float = 30.0) -> None:
        self._stores = stores
        self.owner = f"r-{uuid.uuid4().hex[:12]}"
        self.lease = timedelta(seconds=lease_s)
        self.changed = asyncio.Event()  # set when a reminder is created or moved

    @property
    def shared(self) -> bool:
        """True when several processes may share the outbox (PostgreSQL)."""
        return self._stores.db.dialect == "postgresql"

    async def release_stale(self) -> int:
        """At start on a single-process store: claims of a previous run are void."""
        if self.shared:
            return 0
        async with self._stores.unit_of_work("reminders_release") as uow:
            return await ReminderRepository(uow.session).release_all()

    async def claim_due(
        self,
        *,
        now: datetime | None = None,
        owner: str | None = None,
        lease: timedelta | None = None,
        limit: int = 200,
    ) -> list[Reminder]:
        """Claim up to `limit` reminders due by `now` (committed before anything is sent).

        Args:
            now: the time to compare due times with (default: now).
            owner: the claimer (default: this process).
            lease: how long the claim holds unless renewed (default: the outbox's).
            limit: how many at most.
        """
        now = now or utcnow()
        async with self._stores.unit_of_work("reminders_claim") as uow:
            views = await ReminderRepository(uow.session).claim(
                owner=owner or self.owner,
                now=now,
                lease_until=now + (lease or self.lease),
                limit=limit,
            )
        return [Reminder.of(v) for v in views]

    async def renew(self) -> None:
        """Keep this process's claims alive while it sends (well within the lease)."""
        async with self._stores.unit_of_work("reminders_renew") as uow:
            await ReminderRepository(uow.session).renew(
                owner=self.owner, lease_until=utcnow() + self.lease
            )

    async def mark_sent(
        self,
        reminder: Reminder,
        *,
        message_id: int | None,
        owner: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """This occurrence was sent: a recurring reminder moves to its next time after now,
        a one-off one is done. False if the claim was lost (nothing changed)."""
        now = now or utcnow()
        values: dict[str, Any] = {
            "occurrence": reminder.occurrence + 1,
            "owner": None,
            "lease_until": None,
            "attempts": 0,
            "sent_at": now,
            "last_message_id": message_id,
            "status": DONE,
        }
        if reminder.recurrence is not None:
            values["status"] = SCHEDULED
            values["due_at"] = reminder.recurrence.next_after(now, reminder.zone)
        return await self._finish(reminder, owner, values)

    async def mark_failed(self, reminder: Reminder, *, owner: str | None = None) -> bool:
        """The chat is gone or blocked the bot: never try this reminder again."""
        values = {"status": FAILED, "owner": None, "lease_until": None}
        return await self._finish(reminder, owner, values)

    async def retry_later(
        self,
        reminder: Reminder,
        *,
        delay_s: float,
        owner: str | None = None,
        counted: bool = True,
        now: datetime | None = None,
    ) -> bool:
        """Try again after `delay_s`. A send that failed for a passing reason is `counted`; a
        429 (Telegram asking to wait) is not. After MAX_ATTEMPTS counted failures a one-off
        reminder fails; a recurring one gives this occurrence up and moves to its next."""
        now = now or utcnow()
        attempts = reminder.attempts + (1 if counted else 0)
        values: dict[str, Any] = {"attempts": attempts, "owner": None}
        if attempts < MAX_ATTEMPTS:
            values |= {"status": SCHEDULED, "lease_until": now + timedelta(seconds=delay_s)}
        elif reminder.recurrence is None:
            values |= {"status": FAILED, "lease_until": None}
        else:
            values |= {
                "status": SCHEDULED,
                "lease_until": None,
                "attempts": 0,
                "occurrence": reminder.occurrence + 1,
                "due_at": reminder.recurrence.next_after(now, reminder.zone),
            }
        return await self._finish(reminder, owner, values)

    async def _finish(self, reminder: Reminder, owner: str | None, values: dict[str, Any]) -> bool:
        async with self._stores.unit_of_work("reminders_mark") as uow:
            return await ReminderRepository(uow.session).finish(
                reminder.id,
                occurrence=reminder.occurrence,
                owner=owner or self.owner,
                values=values,
            )

    async def next_due(self) -> datetime | None:
        """When the soonest reminder is due, or a lapsed claim can be taken over."""
        async with self._stores.db.reads() as session:
            return await ReminderRepository(session).next_due()
