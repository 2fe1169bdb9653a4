"""Typed, keyword-only data functions over an AsyncSession; the caller owns the commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditRow, KeyValueRow, MemoryRow, UserRow, utcnow


def is_live(now: datetime) -> ColumnElement[bool]:
    """Rows that have not expired at `now`."""
    return or_(MemoryRow.expires_at.is_(None), MemoryRow.expires_at > now)


async def get_user(session: AsyncSession, *, user_id: int) -> UserRow | None:
    return await session.get(UserRow, user_id)


async def register_user(
    session: AsyncSession,
    *,
    user_id: int,
    username: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    language_code: str | None = None,
    role: str = "user",
) -> UserRow:
    """Create the user or refresh their profile fields; the role is only set on creation."""
    user = await session.get(UserRow, user_id)
    if user is None:
        user = UserRow(id=user_id, role=role)
        session.add(user)
    user.username = username
    user.first_name = first_name
    user.last_name = last_name
    user.language_code = language_code
    user.last_seen_at = utcnow()
    return user


async def existing_user_ids(session: AsyncSession, *, user_ids: Sequence[int]) -> set[int]:
    if not user_ids:
        return set()
    rows = await session.scalars(select(UserRow.id).where(UserRow.id.in_(set(user_ids))))
    return set(rows)


async def memories_by_source(
    session: AsyncSession, *, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], MemoryRow]:
    """Memories made from the given (chat_id, message_id) pairs."""
    if not keys:
        return {}
    rows = await session.scalars(
        select(MemoryRow).where(tuple_(MemoryRow.chat_id, MemoryRow.message_id).in_(set(keys)))
    )
    return {(row.chat_id, row.message_id): row for row in rows}  # type: ignore[misc]


async def get_memory(
    session: AsyncSession, *, memory_id: uuid.UUID, user_id: int, now: datetime
) -> MemoryRow | None:
    """One live memory of `user_id`, or None (another user's memory is never returned)."""
    return await session.scalar(
        select(MemoryRow).where(
            MemoryRow.id == memory_id, MemoryRow.user_id == user_id, is_live(now)
        )
    )


async def list_memories(
    session: AsyncSession, *, user_id: int, now: datetime, limit: int, offset: int
) -> list[MemoryRow]:
    rows = await session.scalars(
        select(MemoryRow)
        .where(MemoryRow.user_id == user_id, is_live(now))
        .order_by(MemoryRow.created_at.desc(), MemoryRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows)


async def count_memories(session: AsyncSession, *, user_id: int, now: datetime) -> int:
    total = await session.scalar(
        select(func.count()).where(MemoryRow.user_id == user_id, is_live(now))
    )
    return int(total or 0)


async def live_memories(
    session: AsyncSession, *, ids: Sequence[uuid.UUID], user_id: int, now: datetime
) -> dict[uuid.UUID, MemoryRow]:
    if not ids:
        return {}
    rows = await session.scalars(
        select(MemoryRow).where(MemoryRow.id.in_(ids), MemoryRow.user_id == user_id, is_live(now))
    )
    return {row.id: row for row in rows}


async def keyword_search(
    session: AsyncSession, *, user_id: int, terms: Sequence[str], now: datetime, limit: int
) -> list[MemoryRow]:
    """Live memories containing any of `terms` (case-insensitive), most matched terms first."""
    if not terms:
        return []
    lowered = func.lower(MemoryRow.text)
    matches = [lowered.contains(term.lower(), autoescape=True) for term in terms]
    score = sum((case((match, 1), else_=0) for match in matches), start=literal(0, Integer))
    rows = await session.scalars(
        select(MemoryRow)
        .where(MemoryRow.user_id == user_id, is_live(now), or_(*matches))
        .order_by(score.desc(), MemoryRow.created_at.desc())
        .limit(limit)
    )
    return list(rows)


async def memory_index(
    session: AsyncSession, *, user_id: int | None
) -> list[tuple[uuid.UUID, int, str, datetime, datetime | None]]:
    """(id, user_id, text, created_at, expires_at) of every memory, expired ones included."""
    query = select(
        MemoryRow.id, MemoryRow.user_id, MemoryRow.text, MemoryRow.created_at, MemoryRow.expires_at
    )
    if user_id is not None:
        query = query.where(MemoryRow.user_id == user_id)
    return [tuple(row) for row in await session.execute(query)]  # type: ignore[misc]


async def memories_with_ids(
    session: AsyncSession, *, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, MemoryRow]:
    if not ids:
        return {}
    rows = await session.scalars(select(MemoryRow).where(MemoryRow.id.in_(ids)))
    return {row.id: row for row in rows}


async def delete_memories(session: AsyncSession, *, ids: Sequence[uuid.UUID]) -> int:
    if not ids:
        return 0
    result = await session.execute(delete(MemoryRow).where(MemoryRow.id.in_(ids)))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def memory_ids_of_user(session: AsyncSession, *, user_id: int) -> list[uuid.UUID]:
    return list(await session.scalars(select(MemoryRow.id).where(MemoryRow.user_id == user_id)))


async def memories_by_prefix(
    session: AsyncSession, *, user_id: int, prefix: str, now: datetime
) -> list[MemoryRow]:
    """Live memories of `user_id` whose hex id starts with `prefix` (at most two)."""
    head = prefix[:8]  # the first 8 hex digits read the same in every dialect's text form
    rows = await session.scalars(
        select(MemoryRow)
        .where(
            MemoryRow.user_id == user_id,
            is_live(now),
            cast(MemoryRow.id, String).like(f"{head}%"),
        )
        .limit(50)
    )
    return [row for row in rows if row.id.hex.startswith(prefix)][:2]


async def add_audit(
    session: AsyncSession,
    *,
    action: str,
    actor_id: int | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    success: bool = True,
) -> None:
    session.add(
        AuditRow(
            action=action, actor_id=actor_id, target=target, details=details or {}, success=success
        )
    )


async def get_value(session: AsyncSession, *, key: str) -> str | None:
    row = await session.get(KeyValueRow, key)
    return None if row is None else row.value


async def set_value(session: AsyncSession, *, key: str, value: str) -> None:
    row = await session.get(KeyValueRow, key)
    if row is None:
        session.add(KeyValueRow(key=key, value=value))
    else:
        row.value = value


def source_key(chat_id: int | None, message_id: int | None) -> tuple[int, int] | None:
    return None if chat_id is None or message_id is None else (chat_id, message_id)
