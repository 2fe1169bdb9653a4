"""The broadcast outbox: one header row per broadcast, one delivery row per recipient."""

from __future__ import annotations

from sqlalchemy import func, insert, literal, select, update
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

    async def mark_delivery(
        self, delivery_id: int, *, status: str, error: str | None, sent: bool
    ) -> None:
        await self._session.execute(
            update(BroadcastDeliveryRow)
            .where(BroadcastDeliveryRow.id == delivery_id)
            .values(
                status=status,
                attempts=BroadcastDeliveryRow.attempts + 1,
                error=error,
                sent_at=utcnow() if sent else None,
            )
        )
