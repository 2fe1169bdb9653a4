"""The users table: registration, roles, quotas and per-user conversation state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import UserRow, utcnow


class UserRepository:
    """User rows by Telegram id."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: int) -> UserRow | None:
        return await self._session.get(UserRow, user_id)

    async def register(
        self,
        *,
        user_id: int,
        username: str | None,
        first_name: str | None,
        last_name: str | None,
        language_code: str | None,
        role: str,
    ) -> UserRow:
        """Create the user or refresh their profile fields; `role` is only set on creation."""
        user = await self._session.get(UserRow, user_id)
        if user is None:
            user = UserRow(id=user_id, role=role)
            self._session.add(user)
        user.username = username
        user.first_name = first_name
        user.last_name = last_name
        user.language_code = language_code
        user.last_seen_at = utcnow()
        return user

    async def existing_ids(self, user_ids: Sequence[int]) -> set[int]:
        """Which of `user_ids` are registered."""
        if not user_ids:
            return set()
        rows = await self._session.scalars(select(UserRow.id).where(UserRow.id.in_(set(user_ids))))
        return set(rows)

    async def role_of(self, user_id: int) -> str | None:
        return await self._session.scalar(select(UserRow.role).where(UserRow.id == user_id))

    async def find(self, target: str) -> UserRow | None:
        """A user by numeric id or by @username (case-insensitive)."""
        name = target.removeprefix("@")
        query = select(UserRow)
        if name.lstrip("-").isdigit():
            query = query.where(UserRow.id == int(name))
        else:
            query = query.where(func.lower(UserRow.username) == name.lower())
        return await self._session.scalar(query)

    async def count(self, *, active: bool) -> int:
        """How many users are active (or blocked the bot)."""
        condition = UserRow.is_active if active else ~UserRow.is_active
        return int(await self._session.scalar(select(func.count()).where(condition)) or 0)

    async def consume_op(self, *, user_id: int, day: str, default_limit: int) -> bool:
        """Count one operation on `day` unless the user's daily limit is reached."""
        limit = func.coalesce(UserRow.daily_ops_limit, default_limit)
        result = await self._session.execute(
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
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def reset_ops(self, *, day: str) -> int:
        """Zero every daily counter; returns how many users had one."""
        result = await self._session.execute(
            update(UserRow).where(UserRow.ops_today != 0).values(ops_today=0, ops_day=day)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def deactivate(self, user_id: int) -> None:
        """The user blocked the bot: no more broadcasts to them."""
        await self._session.execute(
            update(UserRow).where(UserRow.id == user_id).values(is_active=False)
        )


class ConversationRepository:
    """What the bot waits for from a user (kept on the users row so it survives restarts)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: int) -> tuple[str, dict[str, Any], datetime] | None:
        """(state, payload, set at) or None when nothing is pending."""
        user = await self._session.get(UserRow, user_id)
        if user is None or user.state is None or user.state_updated_at is None:
            return None
        return user.state, dict(user.state_payload or {}), user.state_updated_at

    async def set(self, user_id: int, state: str | None, payload: dict[str, Any] | None) -> None:
        """Set (or with None, clear) the pending state of a registered user."""
        user = await self._session.get(UserRow, user_id)
        if user is None:
            return
        user.state = state
        user.state_payload = payload if state else None
        user.state_updated_at = utcnow() if state else None
