"""The bot's services: the engine plus the bot's own stores, shared by every handler."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from telegram import Update, User
from telegram.constants import ChatType

from bot.actors import Actor, actor_of, thread_of
from bot.conversations import ConversationStore
from bot.ledger import UpdateLedger
from bot.membership import GroupAdmins, MemberLookup
from bot.memos import Memos
from engine.admin import Role
from engine.app import MemoryEngine
from engine.clock import utcnow
from engine.errors import AlreadyExists, InvalidInput
from engine.memory import is_expired
from engine.uow import InSameUnit, UnitOfWork
from engine.users import Profile, Registration
from engine.users import User as KnownUser

KEY = "memorybot"  # where the Application keeps them: `app.bot_data[KEY]`


class ViewerOnly(InvalidInput):
    """A viewer tried to change memories."""

    def __init__(self) -> None:
        super().__init__(
            "Your role is viewer: you can /recall and /list, but not change memories."
        )


@dataclass
class BotServices:
    """The engine, conversation state, recall memo, update ledger and the group-admin cache."""

    engine: MemoryEngine
    conversations: ConversationStore
    recalls: Memos  # the recall and /list memos behind their buttons
    ledger: UpdateLedger
    admins: GroupAdmins = field(default_factory=GroupAdmins)
    failures: dict[int, BaseException] = field(default_factory=dict)
    users_in_update: dict[int, KnownUser] = field(default_factory=dict)
    unwritten: dict[int, Registration] = field(default_factory=dict)  # by update id
    held_in_update: dict[int, int] = field(default_factory=dict)  # space count, by update id
    wake_broadcasts: Callable[[], None] = lambda: None

    @classmethod
    def create(cls, engine: MemoryEngine) -> BotServices:
        """The bot's stores on the engine's `Stores`."""
        return cls(
            engine=engine,
            conversations=ConversationStore(engine.stores),
            recalls=Memos(engine.stores),
            ledger=UpdateLedger(engine.stores),
        )

    async def permit(
        self, update: Update, *, write: bool, stores: bool = False, carry: bool = False
    ) -> Actor | None:
        """The actor if their role and quotas allow this operation; else reply and None.

        Quotas count per acting user (a group speaker is registered, inactive, for that);
        an anonymous administrator has no user row and no daily count. The stored-memories
        cap is per space.

        Args:
            write: the operation changes memories (viewers may only read).
            stores: the operation adds a memory (checks the stored-memories quota too).
            carry: the caller's write carries the user's registration (`carried_user`);
                otherwise a registration still unwritten is written now, before it.
        """
        actor = actor_of(update)
        engine = self.engine
        try:
            user, held = await asyncio.gather(  # two reads at once, not one after the other
                self._known_user(update, actor, defer=carry),
                self._held(update, actor) if stores else _nothing(),
            )
            if user is not None and write and user.role == Role.VIEWER:
                raise ViewerOnly()
            if held is not None:
                engine.quotas.check_held(held, actor.space_id, owner=user)
                actor = dataclasses.replace(actor, held=held)  # the save needs no 2nd COUNT
            if user is not None:
                engine.quotas.consume_for(user)
            if not carry:
                await self.write_user(update)
        except InvalidInput as refusal:
            chat = update.effective_chat
            if chat is not None:
                await chat.send_message(f"⚠️ {refusal}", message_thread_id=thread_of(update))
            return None
        return actor

    async def welcome(self, update: Update, *, may_save: bool) -> KnownUser:
        """The gate's read of a private sender (see `ensure_user`); for a message that may be
        saved, the space's count for its quota check is read beside it, not after it."""
        chat = update.effective_chat
        if not may_save or chat is None:
            return await self.ensure_user(update)
        known, held = await asyncio.gather(
            self.ensure_user(update, defer=True), self.engine.quotas.held(chat.id)
        )
        self.held_in_update[update.update_id] = held
        return known

    async def _held(self, update: Update, actor: Actor) -> int:
        held = self.held_in_update.pop(update.update_id, None)
        return await self.engine.quotas.held(actor.space_id) if held is None else held

    async def _known_user(self, update: Update, actor: Actor, *, defer: bool) -> KnownUser | None:
        return None if actor.anonymous else await self.ensure_user(update, defer=defer)

    async def ensure_user(self, update: Update, *, defer: bool = False) -> KnownUser:
        """Make the sender a known user: in a private chat an active one (a broadcast
        recipient, again at once after a block), in a group an inactive one. Returns the row.

        Reads the user's row once per update (the gate and `permit` share it; no cache that
        would outlive the update, so a block or a role change counts at the next message)
        and writes only when they are new, come back in private, or changed their name.
        With `defer` that write waits for the update's own write to carry it (a newcomer's
        first save is one transaction), or for `write_user`; the row as it will be is returned.
        """
        memo = self.users_in_update.get(update.update_id)
        if memo is not None:
            return memo
        user, chat = update.effective_user, update.effective_chat
        assert user is not None
        assert chat is not None
        private = chat.type == ChatType.PRIVATE
        known = await self.engine.users.get(user_id=user.id)
        stale = (
            known is None
            or (not known.is_active and private)
            or (known.username, known.first_name) != (user.username, user.first_name)
        )
        if stale and defer:  # (`stale` is True when `known` is None)
            later = self.engine.users.registration(profile_of(user, private), known)
            self.unwritten[update.update_id] = later
            known = later.user
        elif stale or known is None:
            try:
                known = await self._register(user, private=private)
            except AlreadyExists:  # registered meanwhile from another chat: refresh that row
                known = await self._register(user, private=private)
        self.users_in_update[update.update_id] = known
        return known

    def carried_user(self, update: Update) -> InSameUnit | None:
        """The sender's unwritten registration, for the update's own write to carry. Owed
        until that write runs it (a save refused before its transaction did not); if that
        transaction then fails, so does the update, and its retry registers them again."""
        update_id = update.update_id
        later = self.unwritten.get(update_id)
        if later is None:
            return None
        registration = later

        async def write(uow: UnitOfWork) -> None:
            await registration.write(uow)
            self.unwritten.pop(update_id, None)

        return write

    async def write_user(self, update: Update) -> None:
        """Write the sender's registration if no write of the update carried it (yet)."""
        later = self.unwritten.pop(update.update_id, None)
        if later is not None:
            try:
                await self.engine.users.apply(later)
            except BaseException:
                self.unwritten[update.update_id] = later  # still owed: written at the end
                raise

    def forget_update(self, update_id: int) -> None:
        """The update is finished: drop what was memoised for it."""
        self.users_in_update.pop(update_id, None)
        self.unwritten.pop(update_id, None)
        self.held_in_update.pop(update_id, None)

    async def _register(self, user: User, *, private: bool) -> KnownUser:
        return await self.engine.users.register(
            user_id=user.id,
            username=user.username,
            first_name=user.first_name,
            last_name=user.last_name,
            language_code=user.language_code,
            private=private,
        )

    async def administers(self, bot: MemberLookup, actor: Actor) -> bool:
        """True if `actor` administers the group they act in (anonymous admins do)."""
        return await self.admins.administers(bot, actor)

    async def is_memory_source(self, actor: Actor, chat_id: int, message_id: int) -> bool:
        """True if that message became a live memory of `actor` (edits of others are free)."""
        async with self.engine.stores.reading() as repos:
            found = await repos.memories.by_source([(chat_id, message_id)])
        row = found.get((chat_id, message_id))
        return row is not None and row.author_id == actor.id and not is_expired(row, utcnow())


async def _nothing() -> None:
    return None


def profile_of(user: User, private: bool) -> Profile:
    """The engine's view of a Telegram user."""
    return Profile(
        user.id, user.username, user.first_name, user.last_name, user.language_code, private
    )
