"""Broadcasts as a durable outbox: one row per recipient, each marked as soon as it is sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, literal, select, update

from storage import repositories as repo
from storage.db import Database
from storage.models import BroadcastDeliveryRow, BroadcastRow, UserRow, utcnow

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

    def __init__(self, *, db: Database) -> None:
        self.db = db

    async def recipients(self) -> int:
        """How many users a broadcast would reach now (active users)."""
        async with self.db.reads() as session:
            return int(await session.scalar(select(func.count()).where(UserRow.is_active)) or 0)

    async def create(
        self,
        *,
        author_id: int,
        text: str,
        progress_chat_id: int | None = None,
        progress_message_id: int | None = None,
    ) -> int:
        """One transaction: the broadcast row and one pending delivery per active user."""
        async with self.db.writes() as session:
            row = BroadcastRow(
                author_id=author_id,
                text=text,
                status=SENDING,
                progress_chat_id=progress_chat_id,
                progress_message_id=progress_message_id,
            )
            session.add(row)
            await session.flush()
            result = await session.execute(
                insert(BroadcastDeliveryRow).from_select(
                    ["broadcast_id", "user_id", "status", "attempts"],
                    select(literal(row.id), UserRow.id, literal(PENDING), literal(0)).where(
                        UserRow.is_active
                    ),
                )
            )
            row.total = int(result.rowcount)  # type: ignore[attr-defined]
            await repo.add_audit(
                session,
                action="broadcast",
                actor_id=author_id,
                target=str(row.id),
                details={"recipients": row.total, "chars": len(text)},
            )
            await session.commit()
            return row.id

    async def progress(self, broadcast_id: int) -> BroadcastProgress | None:
        async with self.db.reads() as session:
            row = await session.get(BroadcastRow, broadcast_id)
            if row is None:
                return None
            grouped = await session.execute(
                select(BroadcastDeliveryRow.status, func.count())
                .where(BroadcastDeliveryRow.broadcast_id == broadcast_id)
                .group_by(BroadcastDeliveryRow.status)
            )
            counts: dict[str, int] = {status: int(n) for status, n in grouped}
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
        query = select(BroadcastRow.id).order_by(BroadcastRow.id.desc()).limit(limit)
        if status is not None:
            query = query.where(BroadcastRow.status == status)
        async with self.db.reads() as session:
            return list(await session.scalars(query))

    async def cancel(self, *, broadcast_id: int, actor_id: int) -> bool:
        """Stop a running broadcast (deliveries not yet sent stay unsent); audited."""
        async with self.db.writes() as session:
            result = await session.execute(
                update(BroadcastRow)
                .where(BroadcastRow.id == broadcast_id, BroadcastRow.status == SENDING)
                .values(status=CANCELLED, finished_at=utcnow())
            )
            changed = bool(result.rowcount)  # type: ignore[attr-defined]
            await repo.add_audit(
                session,
                action="broadcast_cancel",
                actor_id=actor_id,
                target=str(broadcast_id),
                success=changed,
            )
            await session.commit()
            return changed

    async def status(self, broadcast_id: int) -> str | None:
        async with self.db.reads() as session:
            return await session.scalar(
                select(BroadcastRow.status).where(BroadcastRow.id == broadcast_id)
            )

    async def pending(self, broadcast_id: int, *, limit: int) -> list[Delivery]:
        async with self.db.reads() as session:
            rows = await session.scalars(
                select(BroadcastDeliveryRow)
                .where(
                    BroadcastDeliveryRow.broadcast_id == broadcast_id,
                    BroadcastDeliveryRow.status == PENDING,
                )
                .order_by(BroadcastDeliveryRow.id)
                .limit(limit)
            )
            return [Delivery(r.id, r.broadcast_id, r.user_id, r.attempts) for r in rows]

    async def mark(self, delivery: Delivery, status: str, *, error: str | None = None) -> None:
        """Record one delivery's outcome; a blocked recipient is made inactive."""
        async with self.db.writes() as session:
            await session.execute(
                update(BroadcastDeliveryRow)
                .where(BroadcastDeliveryRow.id == delivery.id)
                .values(
                    status=status,
                    attempts=BroadcastDeliveryRow.attempts + 1,
                    error=error,
                    sent_at=utcnow() if status == SENT else None,
                )
            )
            if status == BLOCKED:
                await session.execute(
                    update(UserRow).where(UserRow.id == delivery.user_id).values(is_active=False)
                )
            await session.commit()

    async def finish(self, broadcast_id: int) -> None:
        async with self.db.writes() as session:
            await session.execute(
                update(BroadcastRow)
                .where(BroadcastRow.id == broadcast_id, BroadcastRow.status == SENDING)
                .values(status=DONE, finished_at=utcnow())
            )
            await session.commit()
