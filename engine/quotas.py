"""Per-user quotas: operations per UTC day and stored memories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.errors import InvalidInput
from engine.stores import Stores
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

    async def consume(self, user_id: int) -> None:
        """Count one operation for today, or raise QuotaExceeded (nothing counted)."""
        async with self._stores.unit_of_work("quota") as uow:
            counted = await uow.users.consume_op(
                user_id=user_id, day=today(), default_limit=self._settings.quota_daily_ops
            )
        if not counted:
            async with self._stores.reading() as repos:
                user = await repos.users.get(user_id)
            cap = user.daily_ops_limit if user and user.daily_ops_limit is not None else None
            raise QuotaExceeded(
                "daily operations",
                cap if cap is not None else self._settings.quota_daily_ops,
                next_reset(),
            )

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
