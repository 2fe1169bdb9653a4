"""Broadcasts as a durable outbox: one row per recipient, each marked as soon as it is sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.stores import Stores

PENDING, SENT, FAILED, BLOCKED = "pending", "sent", "failed", "blocked"
SENDING, DONE, CANCELLED = "sending", "done", "cancelled"


@dataclass(frozen=True)
class BroadcastProgress:
    id: int
    status: str
    text: str
    total: int
    sent: int
    failed: int
    blocked: int
    pending: int
    created_at: datetime
    progress_chat_id: int | None
    progress_message_id: int | None

    def eta_s(self, rate: float) -> float:
        return self.pending / rate if rate > 0 else 0.0


@dataclass(frozen=True)
class Delivery:
    id: int
    broadcast_id: int
    user_id: int
    attempts: int


class BroadcastService:
    """Create, follow and cancel broadcasts; the delivery worker (jobs.delivery) sends them."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def recipients(self) -> int:
        """How many users a broadcast would reach now (active users)."""
        async with self._stores.reading() as repos:
            return await repos.users.count(active=True)

    async def create(
        self,
        *,
        author_id: int,
        text: str,
        progress_chat_id: int | None = None,
        progress_message_id: int | None = None,
    ) -> int:
        """One transaction: the broadcast row and one pending delivery per active user."""
        async with self._stores.unit_of_work("broadcast") as uow:
            row = await uow.broadcasts.create(
                author_id=author_id,
                text=text,
                status=SENDING,
                pending=PENDING,
                progress_chat_id=progress_chat_id,
                progress_message_id=progress_message_id,
            )
            uow.audit.add(
                action="broadcast",
                actor_id=author_id,
                target=str(row.id),
                details={"recipients": row.total, "chars": len(text)},
            )
        return row.id

    async def progress(self, broadcast_id: int) -> BroadcastProgress | None:
        """Counts per delivery status, or None for an unknown broadcast."""
        async with self._stores.reading() as repos:
            row = await repos.broadcasts.get(broadcast_id)
            if row is None:
                return None
            counts = await repos.broadcasts.status_counts(broadcast_id)
        return BroadcastProgress(
            row.id,
            row.status,
            row.text,
            row.total,
            counts.get(SENT, 0),
            counts.get(FAILED, 0),
            counts.get(BLOCKED, 0),
            counts.get(PENDING, 0),
            row.created_at,
            row.progress_chat_id,
            row.progress_message_id,
        )

    async def ids(self, *, status: str | None = None, limit: int = 5) -> list[int]:
        """Newest broadcast ids, optionally only those with `status`."""
        async with self._stores.reading() as repos:
            return await repos.broadcasts.newest_ids(status=status, limit=limit)

    async def cancel(self, *, broadcast_id: int, actor_id: int) -> bool:
        """Stop a running broadcast (deliveries not yet sent stay unsent); audited."""
        async with self._stores.unit_of_work("broadcast_cancel") as uow:
            changed = await uow.broadcasts.finish(
                broadcast_id, from_status=SENDING, to_status=CANCELLED
            )
            uow.audit.add(
                action="broadcast_cancel",
                actor_id=actor_id,
                target=str(broadcast_id),
                success=changed,
            )
        return changed

    async def status(self, broadcast_id: int) -> str | None:
        """The broadcast's status, or None if there is no such broadcast."""
        async with self._stores.reading() as repos:
            row = await repos.broadcasts.get(broadcast_id)
        return None if row is None else row.status

    async def pending(self, broadcast_id: int, *, limit: int) -> list[Delivery]:
        """The next deliveries still to send, oldest first."""
        async with self._stores.reading() as repos:
            rows = await repos.broadcasts.deliveries(broadcast_id, status=PENDING, limit=limit)
        return [Delivery(r.id, r.broadcast_id, r.user_id, r.attempts) for r in rows]

    async def mark(self, delivery: Delivery, status: str, *, error: str | None = None) -> None:
        """Record one delivery's outcome; a blocked recipient is made inactive."""
        async with self._stores.unit_of_work("delivery") as uow:
            await uow.broadcasts.mark_delivery(
                delivery.id, status=status, error=error, sent=status == SENT
            )
            if status == BLOCKED:
                await uow.users.deactivate(delivery.user_id)

    async def finish(self, broadcast_id: int) -> None:
        """Mark a running broadcast done."""
        async with self._stores.unit_of_work("broadcast_done") as uow:
            await uow.broadcasts.finish(broadcast_id, from_status=SENDING, to_status=DONE)
