"""Per-user quotas: operations per UTC day and stored memories."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from engine.errors import InvalidInput
from engine.stores import Stores
from engine.users import User
from storage.models import utcnow

log = logging.getLogger("memorybot.quotas")
FLUSH_S = 0.05
KNOWN_LIMIT = 100_000


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
    """Counts operations per user and day; admins can override limits per user.

    The check reads the user's row (callers that hold it pass it in); the count is written
    behind: increments wait in this process for at most `FLUSH_S` and are persisted for all
    users in one transaction, while checks here add the increments not yet written. Across
    several bot processes a user may get a few operations beyond the limit (those in flight
    elsewhere); a crash forgets at most the last `FLUSH_S` of counts.
    """

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._settings = stores.settings
        self._pending: dict[int, int] = {}  # counted here, not written yet
        self._known: dict[int, tuple[str, int]] = {}  # (day, count) with every count of ours
        self._flusher: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()  # one flush at a time: a flush waits for one in flight

    async def consume(self, user_id: int) -> None:
        """Count one operation for today, or raise QuotaExceeded (nothing counted)."""
        async with self._stores.reading() as repos:
            row = await repos.users.get(user_id)
        if row is not None:
            self.consume_for(User.from_row(row))

    def consume_for(self, user: User) -> None:
        """Count one operation of `user` (their row as just read), or raise QuotaExceeded."""
        day = today()
        written = user.ops_today if user.ops_day == day else 0
        known_day, known = self._known.get(user.id, (day, 0))
        used = max(written, known if known_day == day else 0)  # the row may lag our counts
        cap = user.daily_ops_limit
        limit = cap if cap is not None else self._settings.quota_daily_ops
        if used >= limit:
            raise QuotaExceeded("daily operations", limit, next_reset())
        self._known[user.id] = (day, used + 1)
        if len(self._known) > KNOWN_LIMIT:  # bounded: the rows have the counts too
            self._known.clear()
        self._pending[user.id] = self._pending.get(user.id, 0) + 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    @property
    def writing(self) -> bool:
        """A write of counts is in flight."""
        return self._flushing.locked()

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_S)
        await asyncio.shield(self.flush())  # cancelled (aclose) mid-write: the write goes on

    async def flush(self) -> None:
        """Write the counts waiting in this process (one transaction for every user).

        When it returns, every count made before the call is written (or kept for a retry
        after a failed write): a flush already in flight is waited for, not skipped.
        """
        async with self._flushing:
            await self._write_pending()

    async def _write_pending(self) -> None:
        counts, self._pending = self._pending, {}
        if not counts:
            return
        try:
            async with self._stores.unit_of_work("quota") as uow:
                await uow.users.add_ops(counts, day=today())
        except Exception:
            for user_id, n in counts.items():  # kept for the next flush
                self._pending[user_id] = self._pending.get(user_id, 0) + n
            log.warning("quota counts not written yet (%d users); retried", len(counts))
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_soon())

    async def aclose(self) -> None:
        """Write what is still waiting (after a write in flight, which is not cut short)."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        with contextlib.suppress(Exception):
            await self.flush()

    async def check_storage(self, space_id: int, *, owner: User | None = None) -> None:
        """Raise QuotaExceeded when the space already holds its maximum of memories.

        A personal space's cap is its user's (an admin may override it); a group's is the
        default from settings. `owner`: the space's user row, if the caller just read it.
        """
        if owner is None and space_id > 0:
            async with self._stores.reading() as repos:
                row = await repos.users.get(space_id)
            owner = None if row is None else User.from_row(row)
        self.check_held(await self.held(space_id), space_id, owner=owner)

    async def held(self, space_id: int) -> int:
        """How many live memories space `space_id` holds."""
        async with self._stores.reading() as repos:
            return await repos.memories.count(space_id=space_id, now=utcnow())

    def check_held(self, held: int, space_id: int, *, owner: User | None) -> None:
        """Raise QuotaExceeded if a space holding `held` memories is full (`owner`: the
        space's user row for a personal space; a group's cap is the default)."""
        cap = self._settings.quota_max_memories
        if owner is not None and owner.id == space_id and owner.max_memories is not None:
            cap = owner.max_memories
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
        """The daily job: zero every counter (also done lazily when the day changes).

        Counts kept in this process are dropped too; other processes drop theirs when the
        day changes, which is when the scheduled job runs.
        """
        await self.flush()
        self._known.clear()
        async with self._stores.unit_of_work("quota_reset") as uow:
            return await uow.users.reset_ops(day=today())
