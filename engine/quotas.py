"""Per-user quotas: operations per UTC day and stored memories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.errors import InvalidInput
from engine.stores import Stores
from storage.batching import BatchQueue
from storage.models import utcnow


class QuotaExceeded(InvalidInput):
    def __init__(self, limit_name: str, limit: int, resets_at: datetime | None) -> None:
        when = f" It resets at {resets_at:%H:%M} UTC." if resets_at else ""
        detail = "for today" if limit_name == "daily operations" else "stored"
        super().__init__(f"You reached your limit of {limit:,} {limit_name} {detail}.{when}")
        self.limit_name = limit_name
        self.limit = limit
        self.resets_at = resets_at


def today() -> str:
    return utcnow().strftime("%Y-%m-%d")


def next_reset() -> datetime:
    now = utcnow()
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


class QuotaService:
    """Counts operations atomically in the users row; admins can override limits per user."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._settings = stores.settings
        self._queue: BatchQueue[int, bool] = BatchQueue(
            self._consume_batch, max_batch=256, wait_s=0.0
        )

    async def consume(self, user_id: int) -> None:
        """Count one operation for today, or raise QuotaExceeded (nothing counted).

        Concurrent calls (many chats at once) share one transaction.
        """
        counted = await self._queue.submit(user_id)
        if not counted:
            async with self._stores.reading() as repos:
                user = await repos.users.get(user_id)
            cap = user.daily_ops_limit if user and user.daily_ops_limit is not None else None
            raise QuotaExceeded(
                "daily operations",
                cap if cap is not None else self._settings.quota_daily_ops,
                next_reset(),
            )

    async def _consume_batch(self, user_ids: list[int]) -> list[bool]:
        day, limit = today(), self._settings.quota_daily_ops
        async with self._stores.unit_of_work("quota") as uow:
            return [
                await uow.users.consume_op(user_id=user_id, day=day, default_limit=limit)
                for user_id in user_ids
            ]

    async def aclose(self) -> None:
        """Stop the batching task."""
        await self._queue.aclose()

    async def check_storage(self, space_id: int) -> None:
        """Raise QuotaExceeded when the space already holds its maximum of memories.

        A personal space's cap is its user's (an admin may override it); a group's is the
        default from settings.
        """
        async with self._stores.reading() as repos:
            user = await repos.users.get(space_id) if space_id > 0 else None
            held = await repos.memories.count(space_id=space_id, now=utcnow())
        cap = self._settings.quota_max_memories
        if user is not None and user.max_memories is not None:
            cap = user.max_memories
        if held >= cap:
            raise QuotaExceeded("memories", cap, None)

    async def set_limits(
        self, *, user_id: int, daily_ops: int | None, max_memories: int | None
    ) -> None:
        """Override one user's limits (None: the default from settings)."""
        async with self._stores.unit_of_work("quota_limits") as uow:
            user = await uow.users.get(user_id)
            if user is not None:
                user.daily_ops_limit = daily_ops
                user.max_memories = max_memories

    async def reset_daily(self) -> int:
        """The daily job: zero every counter (also done lazily when the day changes)."""
        async with self._stores.unit_of_work("quota_reset") as uow:
            return await uow.users.reset_ops(day=today())
