"""Conversation state per (chat, user), kept in SQL so it survives restarts; forgetting a
chat's traces after /forget_all and moving them after a group's upgrade."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.memos import Memos
from engine.clock import utcnow
from engine.stores import Stores
from engine.uow import InSameUnit, UnitOfWork

STATE_TIMEOUT = timedelta(minutes=10)
CACHE_LIMIT = 50_000
Pending = tuple[str, dict[str, Any], datetime]  # state, payload, set at


class Awaiting(StrEnum):
    """Every state a conversation can wait in; the values are what is stored."""

    SAVE_TEXT = "awaiting_save"  # /save alone: the next message is the text
    RECALL_QUERY = "awaiting_recall"  # /recall alone: the next message is the question
    BROADCAST_TEXT = "awaiting_broadcast"  # /broadcast alone: the next message is the text
    BROADCAST_CONFIRMATION = "confirm_broadcast"  # a preview waits for Send or Cancel
    FORGET_ALL_CONFIRMATION = "confirm_forget_all"  # /forget_all waits for Yes or Cancel
    IMPORT_FILE = "awaiting_import"  # /import alone: the next message brings the file


KNOWN_STATES = frozenset(state.value for state in Awaiting)


@dataclass(frozen=True)
class Conversation:
    """What the bot waits for from a user in one chat, with what it needs to continue."""

    state: Awaiting
    payload: dict[str, Any]


class ConversationStore:
    """`/save` alone sets `Awaiting.SAVE_TEXT`; the user's next message in that chat completes it.

    State is kept per (chat, user): a prompt started in one chat is completed only in that chat.
    For an anonymous group administrator the "user" is the group itself.

    Only a chat's own updates change its state, and the inbox gives a chat to one worker at a
    time; while this process holds a chat (`hold` … `let_go`), its state is cached here and
    read from SQL only once.
    """

    def __init__(self, stores: Stores, *, timeout: timedelta = STATE_TIMEOUT) -> None:
        self.stores = stores
        self.timeout = timeout
        self._held: set[int] = set()
        self._cache: dict[tuple[int, int], Pending | None] = {}

    def hold(self, chat_id: int) -> None:
        """This process now processes `chat_id` alone: its state may be cached."""
        if len(self._cache) > CACHE_LIMIT:  # bounded memory: start over
            self._cache.clear()
            self._held.clear()
        self._held.add(chat_id)

    def let_go(self, chat_id: int) -> None:
        """Another process may take `chat_id` over: forget what was cached of it."""
        self._held.discard(chat_id)
        for key in [key for key in self._cache if key[0] == chat_id]:
            del self._cache[key]

    async def get(self, chat_id: int, user_id: int) -> Conversation | None:
        """The pending state, or None (none set, timed out, or unknown to this version)."""
        key = (chat_id, user_id)
        if key in self._cache:
            pending = self._cache[key]
        else:
            async with self.stores.reading() as repos:
                pending = await repos.conversations.get(chat_id, user_id)
            if chat_id in self._held:
                self._cache[key] = pending
        if pending is None:
            return None
        state, payload, set_at = pending
        if utcnow() - set_at > self.timeout or state not in KNOWN_STATES:
            return None
        return Conversation(Awaiting(state), dict(payload))

    async def set(
        self,
        chat_id: int,
        user_id: int,
        state: Awaiting | None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Set (or with None, clear) what the bot waits for from `user_id` in `chat_id`."""
        self._cache.pop((chat_id, user_id), None)
        async with self.stores.unit_of_work("conversation_state") as uow:
            await uow.conversations.set(chat_id, user_id, state.value if state else None, payload)
        if chat_id in self._held:
            self._cache[(chat_id, user_id)] = (
                None if state is None else (state.value, dict(payload or {}), utcnow())
            )

    async def clear(self, chat_id: int, user_id: int) -> None:
        """Forget what the bot was waiting for from `user_id` in `chat_id`."""
        await self.set(chat_id, user_id, None)

    async def confirmation(
        self, chat_id: int, user_id: int, state: Awaiting, nonce: str
    ) -> Conversation | None:
        """The pending `state` if its nonce is `nonce`, else None (the button expired).

        Confirmation buttons carry the nonce of the question they answer, so a button under
        an older question (or a second tap) finds nothing to confirm. It is not cleared here:
        the confirmed action clears it in its own unit of work (`clearing`), so an action
        that fails is retried with its confirmation still there.
        """
        pending = await self.get(chat_id, user_id)
        if pending is None or pending.state != state or pending.payload.get("nonce") != nonce:
            return None
        return pending

    def clearing(self, chat_id: int, user_id: int) -> InSameUnit:
        """The step that clears `user_id`'s state in `chat_id` inside an action's unit of work
        (the cache forgets it now: the next `get` reads what committed)."""
        self._cache.pop((chat_id, user_id), None)

        async def clear(uow: UnitOfWork) -> None:
            await uow.conversations.set(chat_id, user_id, None, None)

        return clear


def purging_chat_traces(chat_id: int, memos: Memos) -> InSameUnit:
    """The step that drops what may still hold a chat's texts: its recall and list memos
    (noted or stored), dead letters and pending conversations (their payloads), inside
    /forget_all's unit of work."""
    purge_memos = memos.purge_step(chat_id)

    async def purge(uow: UnitOfWork) -> None:
        await purge_memos(uow)  # first: it waits for a flush of this chat's memos in flight
        await uow.dead_letters.purge_chat(chat_id)
        await uow.conversations.clear_chat(chat_id)

    return purge


def moving_chat_traces(old: int, new: int, memos: Memos) -> InSameUnit:
    """The step that moves a chat's pending conversations, recall and list memos and dead
    letters to the chat's new id (a group upgraded to a supergroup), inside the space's move."""
    return memos.move_step(old, new)
