"""Moving a chat's rows to another chat id (a group upgraded to a supergroup), in one session.

Every statement here is a set-based UPDATE (or the DELETE of a row the move would collide
with), so a move costs a handful of statements however large the space is, and runs again
harmlessly: a second run finds nothing left under the old id.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    ConversationRow,
    DeadLetterRow,
    KeyValueRow,
    MemoryRow,
    MemoryTagRow,
    ReminderRow,
)

UNSYNCED = {"synchronize_session": False}  # set-based: no ORM object of these rows is loaded


class SpaceRepository:
    """The SQL side of moving a space: its memories, tags and reminders; the chat's states,
    memos and dead letters."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_move(self, old: int) -> None:
        """Hold the move of space `old` until this transaction ends: a second mover waits, then
        finds nothing left. SQLite's write transactions already run one at a time (BEGIN
        IMMEDIATE); PostgreSQL takes a transaction advisory lock keyed by the (negative) group
        id, apart from the leader locks' (non-negative) keys."""
        if self._session.get_bind().dialect.name == "postgresql":
            await self._session.execute(select(func.pg_advisory_xact_lock(old)))

    async def move_memories(self, *, old: int, new: int) -> int:
        """Memories, their tags and their reminders of space `old` now belong to `new`.

        `memories.chat_id` keeps naming the chat the message came from: with `message_id` it
        is the message's identity (a retried old update finds its memory by it), and the
        supergroup numbers its own messages afresh, so moving it could collide.
        """
        moved = await self._session.execute(
            update(MemoryRow)
            .where(MemoryRow.space_id == old)
            .values(space_id=new)
            .execution_options(**UNSYNCED)
        )
        for table in (MemoryTagRow, ReminderRow):
            await self._session.execute(
                update(table)
                .where(table.space_id == old)
                .values(space_id=new)
                .execution_options(**UNSYNCED)
            )
        return int(moved.rowcount)  # type: ignore[attr-defined]

    async def move_chat(self, *, old: int, new: int, memo_prefix: str) -> None:
        """Pending conversations, memos (`{memo_prefix}{chat}:…` keys) and dead letters of chat
        `old` move to `new`; where `new` already has its own (a user started something there
        first), the newer one in `new` is kept."""
        taken = select(ConversationRow.user_id).where(ConversationRow.chat_id == new)
        await self._session.execute(
            delete(ConversationRow)
            .where(ConversationRow.chat_id == old, ConversationRow.user_id.in_(taken))
            .execution_options(**UNSYNCED)
        )
        await self._session.execute(
            update(ConversationRow)
            .where(ConversationRow.chat_id == old)
            .values(chat_id=new)
            .execution_options(**UNSYNCED)
        )
        await self._session.execute(
            update(DeadLetterRow)
            .where(DeadLetterRow.chat_id == old)
            .values(chat_id=new)
            .execution_options(**UNSYNCED)
        )
        await self._move_keys(f"{memo_prefix}{old}:", f"{memo_prefix}{new}:")

    async def _move_keys(self, old_prefix: str, new_prefix: str) -> None:
        rows = list(
            await self._session.scalars(
                select(KeyValueRow).where(KeyValueRow.key.startswith(old_prefix, autoescape=True))
            )
        )
        if not rows:
            return
        wanted = {new_prefix + row.key[len(old_prefix) :]: row for row in rows}
        present = set(
            await self._session.scalars(
                select(KeyValueRow.key).where(KeyValueRow.key.in_(list(wanted)))
            )
        )
        for key, row in wanted.items():
            if key not in present:
                self._session.add(KeyValueRow(key=key, value=row.value))
            await self._session.delete(row)
