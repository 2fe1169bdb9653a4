"""The broadcast outbox: one header row per broadcast, one delivery row per recipient.

A delivery is claimed before its send, in its own committed transaction: `pending` (or a
claim whose lease lapsed) becomes `sending` with an owner and a lease. On PostgreSQL the
claim skips rows another worker is claiming (`FOR UPDATE SKIP LOCKED`); on SQLite the unit of
work holds the database's write lock. Only the owner of a claim marks or releases it, so a
worker whose claim was taken over changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, exists, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import BroadcastDeliveryRow, BroadcastRow, UserRow, utcnow


class BroadcastRepository:
    """Broadcasts and their deliveries."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(
        self,
        *,
        author_id: int,
        text: str,
        status: str,
        pending: str,
        progress_chat_id: int | None,
        progress_message_id: int | None,
    ) -> BroadcastRow:
        """The header row and one `pending` delivery per active user."""
        row = BroadcastRow(
            author_id=author_id,
            text=text,
            status=status,
            progress_chat_id=progress_chat_id,
            progress_message_id=progress_message_id,
        )
        self._session.add(row)
        await self._session.flush()
        result = await self._session.execute(
            insert(BroadcastDeliveryRow).from_select(
                ["broadcast_id", "user_id", "status", "attempts"],
                select(literal(row.id), UserRow.id, literal(pending), literal(0)).where(
                    UserRow.is_active
                ),
            )
        )
        row.total = int(result.rowcount)  # type: ignore[attr-defined]
        return row

    async def get(self, broadcast_id: int) -> BroadcastRow | None:
        return await self._session.get(BroadcastRow, broadcast_id)

    async def status_counts(self, broadcast_id: int) -> dict[str, int]:
        grouped = await self._session.execute(
            select(BroadcastDeliveryRow.status, func.count())
            .where(BroadcastDeliveryRow.broadcast_id == broadcast_id)
            .group_by(BroadcastDeliveryRow.status)
        )
        return {status: int(n) for status, n in grouped}

    async def newest_ids(self, *, status: str | None, limit: int) -> list[int]:
        query = select(BroadcastRow.id).order_by(BroadcastRow.id.desc()).limit(limit)
        if status is not None:
            query = query.where(BroadcastRow.status == status)
        return list(await self._session.scalars(query))

    async def count(self, *, status: str) -> int:
        query = select(func.count()).where(BroadcastRow.status == status)
        return int(await self._session.scalar(query) or 0)

    async def finish(self, broadcast_id: int, *, from_status: str, to_status: str) -> bool:
        """Move a broadcast from `from_status` to `to_status`; False if it was not there."""
        result = await self._session.execute(
            update(BroadcastRow)
            .where(BroadcastRow.id == broadcast_id, BroadcastRow.status == from_status)
            .values(status=to_status, finished_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def deliveries(
        self, broadcast_id: int, *, status: str, limit: int
    ) -> list[BroadcastDeliveryRow]:
        rows = await self._session.scalars(
            select(BroadcastDeliveryRow)
            .where(
                BroadcastDeliveryRow.broadcast_id == broadcast_id,
                BroadcastDeliveryRow.status == status,
            )
            .order_by(BroadcastDeliveryRow.id)
            .limit(limit)
        )
        return list(rows)

    async def claim(
        self,
        broadcast_id: int,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        pending: str,
        claimed: str,
        running: str,
    ) -> list[tuple[int, int, int]]:
        """Claim up to `limit` deliveries of a broadcast still `running`: `pending` ones, or
        `claimed` ones whose lease lapsed; they become `claimed` by `owner` until
        `lease_until`. One statement; returns (id, user_id, attempts) of each, oldest first."""
        row = BroadcastDeliveryRow
        free = or_(row.status == pending, and_(row.status == claimed, row.lease_until < now))
        still_running = exists().where(
            BroadcastRow.id == broadcast_id, BroadcastRow.status == running
        )
        chosen = (
            select(row.id)
            .where(row.broadcast_id == broadcast_id, free, still_running)
            .order_by(row.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=row)
        )
        result = await self._session.execute(
            update(row)
            .where(row.id.in_(chosen.scalar_subquery()))
            .values(status=claimed, owner=owner, lease_until=lease_until)
            .returning(row.id, row.user_id, row.attempts)
            .execution_options(synchronize_session=False)
        )
        return sorted((int(i), int(u), int(n)) for i, u, n in result)

    async def renew(self, *, owner: str, claimed: str, lease_until: datetime) -> int:
        """Extend every claim `owner` holds; returns how many."""
        result = await self._session.execute(
            update(BroadcastDeliveryRow)
            .where(BroadcastDeliveryRow.owner == owner, BroadcastDeliveryRow.status == claimed)
            .values(lease_until=lease_until)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def release(
        self, *, owner: str | None, claimed: str, pending: str, ids: Sequence[int] | None = None
    ) -> int:
        """Give claims back to the queue: `owner`'s (of `ids` only, if given), or every claim
        when `owner` is None (a single-process store at start)."""
        query = update(BroadcastDeliveryRow).where(BroadcastDeliveryRow.status == claimed)
        if owner is not None:
            query = query.where(BroadcastDeliveryRow.owner == owner)
        if ids is not None:
            query = query.where(BroadcastDeliveryRow.id.in_(ids))
        result = await self._session.execute(
            query.values(status=pending, owner=None, lease_until=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def mark_delivery(
        self,
        delivery_id: int,
        *,
        owner: str,
        claimed: str,
        status: str,
        error: str | None,
        sent: bool,
    ) -> bool:
        """Record the outcome of a delivery `owner` still holds; False if it does not."""
        result = await self._session.execute(
            update(BroadcastDeliveryRow)
            .where(
                BroadcastDeliveryRow.id == delivery_id,
                BroadcastDeliveryRow.owner == owner,
                BroadcastDeliveryRow.status == claimed,
            )
            .values(
                status=status,
                attempts=BroadcastDeliveryRow.attempts + 1,
                error=error,
                sent_at=utcnow() if sent else None,
                lease_until=None,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
