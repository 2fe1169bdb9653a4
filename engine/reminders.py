"""Reminders: a memory (kind "reminder") plus a row in a durable delivery outbox.

Delivery (jobs.reminders) is claim → send → mark: the claim is committed before the send, and
the mark right after Telegram accepted it. A worker that dies between claim and send leaves a
lease that runs out, and the reminder is sent by the next claimer; one that dies after
Telegram accepted the message but before the mark committed (a few milliseconds) makes that
occurrence go out twice. Nothing is ever sent before it is due.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta

from engine.clock import utcnow
from engine.errors import UnknownUser
from engine.inserts import new_row
from engine.memory import NewMemory, is_personal, normalise_text, vector_record
from engine.reminder_outbox import Reminder, ReminderOutbox
from engine.schedule import Schedule, parse_reminder
from engine.stores import Stores
from engine.uow import InSameUnit
from engine.zones import place, zone
from storage.models import MemoryRow, ReminderRow
from storage.repositories.reminders import (
    CANCELLED,
    DONE,
    FAILED,
    OPEN,
    SCHEDULED,
    ReminderRepository,
)

__all__ = ["CANCELLED", "DONE", "FAILED", "SCHEDULED", "Reminder", "ReminderService"]


class ReminderService:
    """Create, list, change and deliver reminders; one claim owner per process."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self.outbox = ReminderOutbox(stores)  # the delivery half (jobs.reminders uses it)

    async def parse(self, payload: str, *, timezone: str | None) -> Schedule:
        """Read `<when> <text>` in `timezone` (off the event loop: dateparser is CPU work).

        Raises:
            BadSchedule: no readable time, no text, or a time that has passed.
        """
        return await asyncio.to_thread(parse_reminder, payload, now=utcnow(), tz=zone(timezone))

    async def create(
        self,
        *,
        space_id: int,
        user_id: int,
        schedule: Schedule,
        timezone: str,
        topic_id: int | None = None,
        chat_id: int | None = None,
        message_id: int | None = None,
        also: InSameUnit | None = None,
    ) -> Reminder:
        """Store the reminder's memory and its outbox row in one unit of work (both or neither),
        with `also` (e.g. recording the user's time zone) in the same unit of work.

        A message made into a reminder before (same chat and message) returns that reminder.

        Raises:
            EmptyText, TextTooLong, UnknownUser: nothing was written.
            WriteFailed: a storage step failed; nothing was written.
        """
        text = normalise_text(schedule.text, limit=self._stores.settings.max_memory_chars)
        if chat_id is not None and message_id is not None:
            earlier = await self._by_source(chat_id, message_id)
            if earlier is not None:
                return earlier
        vector = await self._stores.embedder.embed(text)
        item = NewMemory(
            space_id=space_id,
            author_id=user_id,
            text=text,
            topic_id=topic_id,
            chat_id=chat_id,
            message_id=message_id,
            kind="reminder",
        )
        async with self._stores.unit_of_work("remind") as uow:
            if is_personal(space_id) and not await uow.users.existing_ids([space_id]):
                raise UnknownUser(space_id)
            if also is not None:
                await also(uow)
            memory = new_row(item, utcnow())
            uow.memories.add(memory)
            uow.track([str(memory.id)])
            await uow.flush()
            uow.tags.add(memory_id=memory.id, space_id=space_id, tags=memory.tags)
            row = ReminderRow(
                memory_id=memory.id,
                space_id=space_id,
                topic_id=topic_id,
                user_id=user_id,
                due_at=schedule.due_at,
                recurrence=schedule.recurrence.encode() if schedule.recurrence else None,
                timezone=timezone,
                status=SCHEDULED,
                occurrence=0,
                attempts=0,
                created_at=utcnow(),
            )
            ReminderRepository(uow.session).add(row)
            await uow.flush()
            await uow.upsert_vectors([vector_record(memory, vector)], replacing=False)
        self.outbox.changed.set()
        return Reminder(
            row.id, memory.id, space_id, topic_id, user_id, text, row.due_at,
            schedule.recurrence, timezone, SCHEDULED, 0, 0,
        )  # fmt: skip

    async def _by_source(self, chat_id: int, message_id: int) -> Reminder | None:
        async with self._stores.db.reads() as session:
            found = await ReminderRepository(session).views(
                MemoryRow.chat_id == chat_id, MemoryRow.message_id == message_id
            )
        return Reminder.of(found[0]) if found else None

    async def upcoming(
        self, *, space_id: int, user_id: int | None = None, limit: int = 20
    ) -> list[Reminder]:
        """Scheduled reminders of a space (one user's if `user_id`), soonest first."""
        async with self._stores.db.reads() as session:
            views = await ReminderRepository(session).upcoming(
                space_id=space_id, user_id=user_id, limit=limit
            )
        return [Reminder.of(v) for v in views]

    async def get(self, *, space_id: int, reminder_id: int) -> Reminder | None:
        """One reminder of a space (any status), or None."""
        async with self._stores.db.reads() as session:
            view = await ReminderRepository(session).get(reminder_id, space_id=space_id)
        return None if view is None else Reminder.of(view)

    async def cancel(self, *, space_id: int, reminder_id: int) -> bool:
        """Stop a reminder (its memory stays); False if it was not open."""
        return await self._change(space_id, reminder_id, OPEN, {"status": CANCELLED})

    async def done(self, *, space_id: int, reminder_id: int) -> bool:
        """✅ on a delivered one-off reminder: it stays done (a snooze of it is dropped).

        A recurring reminder goes on; False when nothing changed."""
        reminder = await self.get(space_id=space_id, reminder_id=reminder_id)
        if reminder is None or reminder.recurrence is not None:
            return False
        return await self._change(space_id, reminder_id, (SCHEDULED,), {"status": DONE})

    async def snooze(self, *, space_id: int, reminder_id: int, until: datetime) -> Reminder | None:
        """Deliver again at `until` (a recurring one: then, or at its next time if sooner).

        Returns the reminder as now scheduled, or None if it is cancelled or gone."""
        reminder = await self.get(space_id=space_id, reminder_id=reminder_id)
        if reminder is None or reminder.status in (CANCELLED, FAILED):
            return None
        if reminder.recurrence is not None and reminder.status == SCHEDULED:
            until = min(until, reminder.due_at)
        values = {"status": SCHEDULED, "due_at": until, "attempts": 0, "lease_until": None}
        if not await self._change(space_id, reminder_id, (SCHEDULED, DONE), values):
            return None
        self.outbox.changed.set()
        return await self.get(space_id=space_id, reminder_id=reminder_id)

    async def _change(
        self, space_id: int, reminder_id: int, statuses: tuple[str, ...], values: dict[str, object]
    ) -> bool:
        async with self._stores.unit_of_work("reminder_change") as uow:
            return await ReminderRepository(uow.session).change(
                reminder_id, space_id=space_id, statuses=statuses, values=values
            )


def snooze_time(kind: str, *, now: datetime, timezone: str) -> datetime:
    """When a snooze ends: "hour" → in one hour; "tomorrow" → tomorrow 9:00 in the zone."""
    if kind == "hour":
        return now + timedelta(hours=1)
    tz = zone(timezone)
    tomorrow = now.astimezone(tz).date() + timedelta(days=1)
    return place(datetime.combine(tomorrow, time(9, 0)), tz)
