"""Per-user conversation state (kept in SQL so it survives restarts) and the recall memo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from engine.clock import utcnow
from engine.stores import Stores

STATE_TIMEOUT = timedelta(minutes=10)


class Awaiting(StrEnum):
    """Every state a conversation can wait in; the values are what the users table stores."""

    SAVE_TEXT = "awaiting_save"  # /save alone: the next message is the text
    RECALL_QUERY = "awaiting_recall"  # /recall alone: the next message is the question
    BROADCAST_TEXT = "awaiting_broadcast"  # /broadcast alone: the next message is the text
    BROADCAST_CONFIRMATION = "confirm_broadcast"  # a preview waits for Send or Cancel
    FORGET_ALL_CONFIRMATION = "confirm_forget_all"  # /forget_all waits for Yes or Cancel


KNOWN_STATES = frozenset(state.value for state in Awaiting)


@dataclass(frozen=True)
class Conversation:
    """What the bot waits for from a user, with what it needs to continue."""

    state: Awaiting
    payload: dict[str, Any]


class ConversationStore:
    """`/save` alone sets `Awaiting.SAVE_TEXT`; the user's next message completes it."""

    def __init__(self, stores: Stores, *, timeout: timedelta = STATE_TIMEOUT) -> None:
        self.stores = stores
        self.timeout = timeout

    async def get(self, user_id: int) -> Conversation | None:
        """The user's pending state, or None (none set, timed out, or unknown to this version)."""
        async with self.stores.reading() as repos:
            pending = await repos.conversations.get(user_id)
        if pending is None:
            return None
        state, payload, set_at = pending
        if utcnow() - set_at > self.timeout or state not in KNOWN_STATES:
            return None
        return Conversation(Awaiting(state), payload)

    async def set(
        self, user_id: int, state: Awaiting | None, payload: dict[str, Any] | None = None
    ) -> None:
        """Set (or with None, clear) the user's state."""
        async with self.stores.unit_of_work("conversation_state") as uow:
            await uow.conversations.set(user_id, state.value if state else None, payload)

    async def clear(self, user_id: int) -> None:
        """Forget what the bot was waiting for from `user_id`."""
        await self.set(user_id, None)

    async def take_confirmation(
        self, user_id: int, state: Awaiting, nonce: str
    ) -> Conversation | None:
        """The pending `state` if its nonce is `nonce`, now cleared; else None (button expired).

        Confirmation buttons carry the nonce of the question they answer, so a button under
        an older question (or a second tap) finds nothing to confirm.
        """
        pending = await self.get(user_id)
        if pending is None or pending.state != state or pending.payload.get("nonce") != nonce:
            return None
        await self.clear(user_id)
        return pending


class RecallMemo:
    """The query behind a user's latest recall message, for its "More" button."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    async def remember(self, user_id: int, message_id: int, query: str) -> None:
        """Keep `query` as the one shown in `message_id` (replacing the user's previous one)."""
        memo = json.dumps({"message_id": message_id, "query": query})
        async with self.stores.unit_of_work("recall_memo") as uow:
            await uow.kv.set(_key(user_id), memo)

    async def query_for(self, user_id: int, message_id: int) -> str | None:
        """The query shown in `message_id`, or None if a newer recall replaced it."""
        async with self.stores.reading() as repos:
            raw = await repos.kv.get(_key(user_id))
        if raw is None:
            return None
        memo = json.loads(raw)
        return str(memo["query"]) if memo.get("message_id") == message_id else None


def _key(user_id: int) -> str:
    return f"recall:{user_id}"
