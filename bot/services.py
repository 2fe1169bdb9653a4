"""What handlers reach through `context.bot_data`: the engine and the bot's own stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from engine.app import MemoryEngine
from engine.conversations import ConversationStore, RecallMemo
from engine.ledger import UpdateLedger

KEY = "memorybot"


@dataclass
class BotServices:
    engine: MemoryEngine
    conversations: ConversationStore
    recalls: RecallMemo
    ledger: UpdateLedger
    known_users: set[int] = field(default_factory=set)
    failures: dict[int, BaseException] = field(default_factory=dict)

    @classmethod
    def create(cls, engine: MemoryEngine) -> BotServices:
        return cls(
            engine=engine,
            conversations=ConversationStore(engine.db),
            recalls=RecallMemo(engine.db),
            ledger=UpdateLedger(engine.db),
        )

    async def ensure_user(self, update: Update) -> int:
        """Register the sender once per process; returns their id."""
        user = update.effective_user
        assert user is not None
        if user.id not in self.known_users:
            await self.engine.users.register(
                user_id=user.id,
                username=user.username,
                first_name=user.first_name,
                last_name=user.last_name,
                language_code=user.language_code,
            )
            self.known_users.add(user.id)
        return user.id


Context = ContextTypes.DEFAULT_TYPE


def services(context: Context) -> BotServices:
    found: Any = context.bot_data[KEY]
    assert isinstance(found, BotServices)
    return found
