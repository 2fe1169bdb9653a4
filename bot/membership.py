"""Who administers a group: asked of Telegram (getChatMember), remembered for a minute."""

from __future__ import annotations

import time
from typing import Protocol

from telegram import ChatMember
from telegram.constants import ChatMemberStatus
from telegram.error import BadRequest, Forbidden

from bot.actors import Actor

ADMIN_TTL_S = 60.0
MAX_ENTRIES = 10_000
ADMIN_STATUSES = frozenset({ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR})


class MemberLookup(Protocol):
    """The part of the Bot API this needs (PTB's Bot has it)."""

    async def get_chat_member(self, chat_id: int | str, user_id: int) -> ChatMember: ...


class GroupAdmins:
    """A small per-process cache of "is this user an administrator of that group"."""

    def __init__(self, *, ttl_s: float = ADMIN_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._known: dict[tuple[int, int], tuple[float, bool]] = {}

    async def administers(self, bot: MemberLookup, actor: Actor) -> bool:
        """True if `actor` is an administrator of the group they act in.

        Anonymous administrators are, by definition; private chats have no administrators.
        Telegram refusing to answer (the bot was removed, the user is unknown) means no.
        """
        if actor.anonymous:
            return True
        if actor.private:
            return False
        key = (actor.space_id, actor.id)
        now = time.monotonic()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        try:
            member = await bot.get_chat_member(actor.space_id, actor.id)
            answer = member.status in ADMIN_STATUSES
        except (BadRequest, Forbidden):
            answer = False
        if len(self._known) >= MAX_ENTRIES:
            self._known = {k: v for k, v in self._known.items() if v[0] > now}
            if len(self._known) >= MAX_ENTRIES:
                self._known.clear()
        self._known[key] = (now + self.ttl_s, answer)
        return answer
