"""Per-user conversation state, kept in SQL so it survives restarts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from storage import repositories as repo
from storage.db import Database
from storage.models import UserRow, utcnow

STATE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Conversation:
    state: str
    payload: dict[str, Any]


class ConversationStore:
    """`/save` alone sets "awaiting_save"; the user's next message completes it."""

    def __init__(self, db: Database, *, timeout: timedelta = STATE_TIMEOUT) -> None:
        self.db = db
        self.timeout = timeout

    async def get(self, user_id: int) -> Conversation | None:
        """The user's pending state, or None (none set, or it timed out)."""
        async with self.db.reads() as session:
            user = await session.get(UserRow, user_id)
        if user is None or user.state is None or user.state_updated_at is None:
            return None
        if utcnow() - user.state_updated_at > self.timeout:
            return None
        return Conversation(user.state, dict(user.state_payload or {}))

    async def set(
        self, user_id: int, state: str | None, payload: dict[str, Any] | None = None
    ) -> None:
        """Set (or with None, clear) the user's state."""
        async with self.db.writes() as session:
            user = await session.get(UserRow, user_id)
            if user is None:
                return
            user.state = state
            user.state_payload = payload if state else None
            user.state_updated_at = utcnow() if state else None
            await session.commit()

    async def clear(self, user_id: int) -> None:
        await self.set(user_id, None)


class RecallMemo:
    """The query behind a user's latest recall message, for its "More" button."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def remember(self, user_id: int, message_id: int, query: str) -> None:
        async with self.db.writes() as session:
            await repo.set_value(
                session,
                key=f"recall:{user_id}",
                value=json.dumps({"message_id": message_id, "query": query}),
            )
            await session.commit()

    async def query_for(self, user_id: int, message_id: int) -> str | None:
        """The query shown in `message_id`, or None if a newer recall replaced it."""
        async with self.db.reads() as session:
            raw = await repo.get_value(session, key=f"recall:{user_id}")
        if raw is None:
            return None
        memo = json.loads(raw)
        return str(memo["query"]) if memo.get("message_id") == message_id else None
