"""The memos behind "More ▶" and "Older ▶": the query a recall or filtered /list message shows,
kept per (chat, user) and written behind, so a recall's answer costs no write transaction.

`remember` only notes the memo in this process; one unit of work writes every noted memo
within `FLUSH_S` (and at shutdown). A memo stays noted until the commit that wrote it, and a
button press reads the noted memo first, then SQL. A crash forgets at most the last
`FLUSH_S` of memos: those buttons then answer "expired".

/forget_all must not leave a text behind: its unit of work drops the chat's noted memos and
deletes its stored ones (`purge_step`) while holding `lock`; a flush takes its memos and
writes them while holding it too, so it cannot write a memo back after the purge. On
PostgreSQL the flush holds the lock through its commit. On SQLite (one writer at a time) it
takes the lock only once its transaction holds the writer: a purge in progress holds the
writer, so the flush waits for it without the lock (no deadlock), and none can start
between the flush's snapshot and its commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from enum import StrEnum

from engine.stores import Stores
from engine.uow import InSameUnit, UnitOfWork

log = logging.getLogger("memorybot.bot")
FLUSH_S = 0.5
MEMO_PREFIX = "recall:"


class Shown(StrEnum):
    """What a memo's message shows: a recall's answer or a filtered /list page."""

    RECALL = ""
    LIST = ":list"


def memo_key(chat_id: int, user_id: int, shown: Shown = Shown.RECALL) -> str:
    """The kv key of a memo: `recall:{chat}:{user}`, `…:list` for a /list."""
    return f"{MEMO_PREFIX}{chat_id}:{user_id}{shown.value}"


class Memos:
    """The latest recall and /list memo per (chat, user), written behind."""

    def __init__(self, stores: Stores, *, flush_s: float = FLUSH_S) -> None:
        self._stores = stores
        self._flush_s = flush_s
        self._noted: dict[str, str] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    def remember(
        self, chat_id: int, user_id: int, message_id: int, query: str, shown: Shown = Shown.RECALL
    ) -> None:
        """Keep `query` as the one shown in `message_id` (replacing the user's previous one)."""
        memo = json.dumps({"message_id": message_id, "query": query})
        self._noted[memo_key(chat_id, user_id, shown)] = memo
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def query_for(
        self, chat_id: int, user_id: int, message_id: int, shown: Shown = Shown.RECALL
    ) -> str | None:
        """The query shown in `message_id`, or None if a newer one replaced it (or expired)."""
        key = memo_key(chat_id, user_id, shown)
        raw = self._noted.get(key)
        if raw is None:
            async with self._stores.reading() as repos:
                raw = await repos.kv.get(key)
        memo = json.loads(raw) if raw else {}
        return str(memo["query"]) if memo.get("message_id") == message_id else None

    async def _flush_soon(self) -> None:
        """Flush within `flush_s`, again while memos noted meanwhile wait (not after a failed
        flush: the next `remember` starts over)."""
        while self._noted:
            await asyncio.sleep(self._flush_s)
            if not await self.flush():
                return

    async def flush(self) -> bool:
        """Write every noted memo in one unit of work. A memo stays noted (and readable)
        until the commit that wrote it; a failure is logged, never raised, and the memos
        wait for the next flush. False when it failed."""
        if not self._noted:
            return True
        written: dict[str, str] = {}
        try:
            if self._stores.db.dialect == "sqlite":
                # One writer at a time: no purge runs between this snapshot and the commit,
                # and a purge in progress holds the writer while this waits without the lock.
                async with self._stores.unit_of_work("memos") as uow, self.lock:
                    written = await self._write(uow)
            else:
                # The lock first, held through the commit: a purge waits for it.
                async with self.lock, self._stores.unit_of_work("memos") as uow:
                    written = await self._write(uow)
        except Exception as error:
            log.warning("memos not kept yet: %s", type(error).__name__)
            return False
        for key, memo in written.items():  # committed: SQL answers for them now
            if self._noted.get(key) == memo:  # unless a newer one was noted meanwhile
                del self._noted[key]
        return True

    async def _write(self, uow: UnitOfWork) -> dict[str, str]:
        noted = dict(self._noted)
        for key, memo in noted.items():
            await uow.kv.set(key, memo)
        return noted

    async def aclose(self) -> None:
        """Write what is noted (at shutdown): the flush due within `FLUSH_S`, then the rest."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush()

    def purge_step(self, chat_id: int) -> InSameUnit:
        """The step that forgets a chat's memos inside /forget_all's unit of work."""

        async def purge(uow: UnitOfWork) -> None:
            async with self.lock:
                self._drop(f"{MEMO_PREFIX}{chat_id}:")
                await uow.kv.delete_prefix(f"{MEMO_PREFIX}{chat_id}:")

        return purge

    def move_step(self, old: int, new: int) -> InSameUnit:
        """The step that moves a chat's memos (noted and stored), pending conversations and
        dead letters to its new id (a group became a supergroup)."""

        async def move(uow: UnitOfWork) -> None:
            async with self.lock:
                prefix = f"{MEMO_PREFIX}{old}:"
                for key in [k for k in self._noted if k.startswith(prefix)]:
                    new_key = f"{MEMO_PREFIX}{new}:{key[len(prefix) :]}"
                    self._noted.setdefault(new_key, self._noted.pop(key))
                await uow.spaces.move_chat(old=old, new=new, memo_prefix=MEMO_PREFIX)

        return move

    def _drop(self, prefix: str) -> None:
        for key in [k for k in self._noted if k.startswith(prefix)]:
            del self._noted[key]
