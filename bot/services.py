"""The bot's services: the engine plus the bot's own stores, shared by every handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from telegram import Update

from bot.conversations import ConversationStore, RecallMemo
from bot.ledger import UpdateLedger
from engine.admin import Role
from engine.app import MemoryEngine
from engine.errors import InvalidInput

KEY = "memorybot"  # where the Application keeps them: `app.bot_data[KEY]`


class ViewerOnly(InvalidInput):
    """A viewer tried to change memories."""

    def __init__(self) -> None:
        super().__init__(
            "Your role is viewer: you can /recall and /list, but not change memories."
        )


@dataclass
class BotServices:
    """The engine, conversation state, recall memo and update ledger, built once per process."""

    engine: MemoryEngine
    conversations: ConversationStore
    recalls: RecallMemo
    ledger: UpdateLedger
    known_users: set[int] = field(default_factory=set)
    failures: dict[int, BaseException] = field(default_factory=dict)
    wake_broadcasts: Callable[[], None] = lambda: None

    @classmethod
    def create(cls, engine: MemoryEngine) -> BotServices:
        """The bot's stores on the engine's `Stores`."""
        return cls(
            engine=engine,
            conversations=ConversationStore(engine.stores),
            recalls=RecallMemo(engine.stores),
            ledger=UpdateLedger(engine.stores),
        )

    async def permit(self, update: Update, *, write: bool, stores: bool = False) -> int | None:
        """The sender's id if their role and quotas allow this operation; else reply and None.

        Args:
            write: the operation changes memories (viewers may only read).
            stores: the operation adds a memory (checks the stored-memories quota too).
        """
        user_id = await self.ensure_user(update)
        engine = self.engine
        try:
            if write and await engine.admin.role_of(user_id) == Role.VIEWER:
                raise ViewerOnly()
            if stores:
                await engine.quotas.check_storage(user_id)
            await engine.quotas.consume(user_id)
        except InvalidInput as refusal:
            chat = update.effective_chat
            if chat is not None:
                await chat.send_message(f"⚠️ {refusal}")
            return None
        return user_id

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
