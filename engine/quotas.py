"""Per-user quotas: operations per UTC day and stored memories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, select, update

from engine.errors import InvalidInput
from engine.settings import Settings
from storage import repositories as repo
from storage.db import Database
from storage.models import UserRow, utcnow


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

    def __init__(self, *, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def consume(self, user_id: int) -> None:
        """Count one operation for today, or raise QuotaExceeded (nothing counted)."""
        day = today()
        limit = func.coalesce(UserRow.daily_ops_limit, self.settings.quota_daily_ops)
        async with self.db.writes() as session:
            result = await session.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .where(
                    (UserRow.ops_day != day)
                    | (UserRow.ops_day.is_(None))
                    | (UserRow.ops_today < limit)
                )
                .values(
                    ops_today=case((UserRow.ops_day == day, UserRow.ops_today + 1), else_=1),
                    ops_day=day,
                )
            )
            await session.commit()
        if result.rowcount == 0:  # type: ignore[attr-defined]
            user = await self._user(user_id)
            cap = user.daily_ops_limit if user and user.daily_ops_limit is not None else None
            raise QuotaExceeded(
                "daily operations",
                cap if cap is not None else self.settings.quota_daily_ops,
                next_reset(),
            )

    async def check_storage(self, user_id: int) -> None:
        """Raise QuotaExceeded when the user already stores their maximum of memories."""
        user = await self._user(user_id)
        cap = self.settings.quota_max_memories
        if user is not None and user.max_memories is not None:
            cap = user.max_memories
        async with self.db.reads() as session:
            held = await repo.count_memories(session, user_id=user_id, now=utcnow())
        if held >= cap:
            raise QuotaExceeded("memories", cap, None)

    async def set_limits(
        self, *, user_id: int, daily_ops: int | None, max_memories: int | None
    ) -> None:
        async with self.db.writes() as session:
            user = await session.get(UserRow, user_id)
            if user is None:
                return
            user.daily_ops_limit = daily_ops
            user.max_memories = max_memories
            await session.commit()

    async def reset_daily(self) -> int:
        """The daily job: zero every counter (also done lazily when the day changes)."""
        async with self.db.writes() as session:
            result = await session.execute(
                update(UserRow).where(UserRow.ops_today != 0).values(ops_today=0, ops_day=today())
            )
            await session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _user(self, user_id: int) -> UserRow | None:
        async with self.db.reads() as session:
            return await session.scalar(select(UserRow).where(UserRow.id == user_id))
