"""The users table: registration, roles, quotas and per-user conversation state."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ConversationRow, UserRow, utcnow

NUMERIC_ID = re.compile(r"-?[0-9]{1,20}")  # a user id as typed (a name never is all digits)
USERNAME = re.compile(r"[A-Za-z0-9_]{1,32}")  # what Telegram allows in a @username


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
        private: bool = True,
    ) -> UserRow:
        """Create the user or refresh their profile fields; `role` is only set on creation.

        Only a user who talks to the bot in private is active (a broadcast recipient); one
        seen only in groups is kept inactive, and becomes active on their first private message.
        """
        user = await self._session.get(UserRow, user_id)
        if user is None:
            user = UserRow(id=user_id, role=role, is_active=private)
            self._session.add(user)
        elif private:
            user.is_active = True
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

    async def find(self, target: str) -> list[UserRow]:
        """Users by numeric id, or by @username (case-insensitive; a stale name may repeat)."""
        name = target.removeprefix("@")
        query = select(UserRow)
        if NUMERIC_ID.fullmatch(name):  # ASCII digits: "²" is a digit to str.isdigit only
            if not -(2**63) <= int(name) < 2**63:  # no such BIGINT (it would overflow)
                return []
            query = query.where(UserRow.id == int(name))
        elif USERNAME.fullmatch(name):
            query = query.where(func.lower(UserRow.username) == name.lower())
        else:  # no such username (and PostgreSQL refuses some characters, e.g. NUL)
            return []
        return list(await self._session.scalars(query.limit(5)))

    async def admin_ids(self) -> list[int]:
        """Every admin's id, however they became one."""
        return list(await self._session.scalars(select(UserRow.id).where(UserRow.role == "admin")))

    async def admins_from_settings(self) -> list[UserRow]:
        """Admins whose role came from ADMIN_USER_IDS (nobody granted it with /role)."""
        query = select(UserRow).where(UserRow.role == "admin", UserRow.role_granted_by.is_(None))
        return list(await self._session.scalars(query))

    async def count(self, *, active: bool) -> int:
        """How many users are active (or blocked the bot)."""
        condition = UserRow.is_active if active else ~UserRow.is_active
        return int(await self._session.scalar(select(func.count()).where(condition)) or 0)

    async def add_ops(self, counts: dict[int, int], *, day: str) -> None:
        """Add `counts[user]` operations on `day` to each user's counter (one statement)."""
        table = cast(Table, UserRow.__table__)
        await self._session.execute(
            update(table)
            .where(table.c.id == bindparam("uid"))
            .values(
                ops_today=case(
                    (table.c.ops_day == day, table.c.ops_today + bindparam("n")),
                    else_=bindparam("n"),
                ),
                ops_day=day,
            ),
            [{"uid": user_id, "n": n} for user_id, n in counts.items()],
        )

    async def reset_ops(self, *, day: str) -> int:
        """Zero every daily counter; returns how many users had one."""
        result = await self._session.execute(
            update(UserRow).where(UserRow.ops_today != 0).values(ops_today=0, ops_day=day)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def set_timezone(self, user_id: int, name: str) -> bool:
        """Store the user's IANA time zone; False if there is no such user."""
        result = await self._session.execute(
            update(UserRow).where(UserRow.id == user_id).values(timezone=name)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def deactivate(self, user_id: int) -> None:
        """The user blocked the bot: no more broadcasts to them."""
        await self._session.execute(
            update(UserRow).where(UserRow.id == user_id).values(is_active=False)
        )


class ConversationRepository:
    """What the bot waits for from one user in one chat (it survives restarts)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, chat_id: int, user_id: int) -> tuple[str, dict[str, Any], datetime] | None:
        """(state, payload, set at) or None when nothing is pending."""
        row = await self._session.get(ConversationRow, (chat_id, user_id))
        return None if row is None else (row.state, dict(row.payload), row.updated_at)

    async def set(
        self, chat_id: int, user_id: int, state: str | None, payload: dict[str, Any] | None
    ) -> None:
        """Set (or with None, clear) what the bot waits for from `user_id` in `chat_id`."""
        row = await self._session.get(ConversationRow, (chat_id, user_id))
        if state is None:
            if row is not None:
                await self._session.delete(row)
            return
        if row is None:
            row = ConversationRow(chat_id=chat_id, user_id=user_id, state=state, payload={})
            self._session.add(row)
        row.state = state
        row.payload = payload or {}
        row.updated_at = utcnow()

    async def clear_chat(self, chat_id: int) -> int:
        """Drop every pending state in `chat_id` (their payloads may hold texts)."""
        result = await self._session.execute(
            delete(ConversationRow).where(ConversationRow.chat_id == chat_id)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
