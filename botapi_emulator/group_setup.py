"""The test side of groups and channels: creating them, their members and the bot's place in them,
and forum topics."""

from __future__ import annotations

import time
from collections.abc import Iterable

from botapi_emulator.groups import BotStatus, GroupKind
from botapi_emulator.model import GROUP_ANONYMOUS_BOT, user_dict
from botapi_emulator.state import EmulatorState


class GroupSetup:
    """Creates groups, channels and forum topics and changes who is in them."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def create_group(
        self,
        chat_id: int,
        *,
        title: str,
        kind: GroupKind = "supergroup",
        forum: bool = False,
        admins: Iterable[int] = (),
        members: Iterable[int] = (),
        creator: int | None = None,
    ) -> None:
        """Register a group (id -1…-999999999999) or supergroup (-100…); the bot is a member.

        No update is queued: the group exists as if the bot had been added long ago.
        """
        admin_ids, member_ids = list(admins), list(members)
        self._state.chats.create_group(
            chat_id,
            title=title,
            kind=kind,
            forum=forum,
            admins=admin_ids,
            members=member_ids,
            creator=creator,
        )
        self._know(*admin_ids, *member_ids, *([] if creator is None else [creator]))

    def upgrade_group(
        self,
        chat_id: int,
        new_chat_id: int,
        *,
        by: int | None = None,
        notices: Iterable[str] = ("to", "from"),
    ) -> list[int]:
        """Upgrade a basic group to a supergroup with id `new_chat_id` (-100…), as Telegram does
        when a group is made public, gets topics or grows: the same people move over, sends to
        the old id answer 400 with `migrate_to_chat_id`, and the two service messages are
        queued (a `migrate_to_chat_id` message in the old group, a `migrate_from_chat_id` one in
        the new supergroup) in the order `notices` names them ("to", "from"; repeat one to
        redeliver it, leave one out to lose it). Returns their update ids.

        by: who upgraded it (default the creator).
        """
        group = self._state.chats.upgrade(chat_id, new_chat_id)
        author = self._state.user(by if by is not None else group.creator or 0)
        old_chat = self._state.chats.require(chat_id).chat_object()
        update_ids = []
        for notice in notices:
            where, field, value = (
                (chat_id, "migrate_to_chat_id", new_chat_id)
                if notice == "to"
                else (new_chat_id, "migrate_from_chat_id", chat_id)
            )
            chat = old_chat if where == chat_id else group.chat_object()
            message = {"message_id": self._state.next_message_id(where), "from": author}
            message |= {"chat": chat, "date": int(time.time()), field: value}
            update_ids.append(self._state.updates.push({"message": message}))
        return update_ids

    def create_channel(
        self, channel_id: int, *, title: str, username: str | None = None, bot_admin: bool = True
    ) -> None:
        """Register a channel (id -100…) the bot administers (bot_admin=False: is not in)."""
        status: BotStatus = "administrator" if bot_admin else "left"
        self._state.chats.create_channel(
            channel_id, title=title, username=username, bot_status=status
        )

    def add_member(self, chat_id: int, user_id: int) -> None:
        """The user joins the group (a ban is lifted)."""
        self._state.chats.require(chat_id).add_member(user_id)
        self._know(user_id)

    def remove_member(self, chat_id: int, user_id: int, *, ban: bool = False) -> None:
        """The user leaves the group (status "left"), or is banned ("kicked")."""
        self._state.chats.require(chat_id).remove_member(user_id, ban=ban)

    def promote(
        self,
        chat_id: int,
        user_id: int,
        *,
        anonymous: bool = False,
        custom_title: str | None = None,
    ) -> None:
        """Make the user an administrator (or set the creator's anonymity and title)."""
        self._state.chats.require(chat_id).promote(
            user_id, anonymous=anonymous, custom_title=custom_title
        )
        self._know(user_id)

    def demote(self, chat_id: int, user_id: int) -> None:
        """An administrator becomes a plain member."""
        self._state.chats.require(chat_id).demote(user_id)

    def set_bot_status(self, chat_id: int, status: BotStatus) -> None:
        """The bot's place in a group or channel: member, administrator, left or kicked."""
        self._state.chats.require(chat_id).bot_status = status

    def set_bot_admin(self, chat_id: int, admin: bool = True) -> None:
        """Promote the bot to administrator of the group, or demote it to a member."""
        self.set_bot_status(chat_id, "administrator" if admin else "member")

    def create_topic(self, chat_id: int, name: str, *, by: int | None = None) -> int:
        """Open a forum topic (queued as its forum_topic_created message); its message_thread_id.

        by: the user who opens it (default the creator; else the anonymous administrator).
        """
        group = self._state.chats.require(chat_id)
        if not group.forum:
            raise ValueError(f"chat {chat_id} is not a forum")
        author = by if by is not None else group.creator
        sender = {"from": dict(GROUP_ANONYMOUS_BOT), "sender_chat": group.chat_object()}
        if author is not None:
            self._state.chats.admit(chat_id, author)
            sender = {"from": self._state.user(author)}
        thread_id = self._state.next_message_id(chat_id)  # a topic is its first message's id
        group.topics[thread_id] = name
        message = {"message_id": thread_id, **sender, "chat": group.chat_object()}
        message |= {"date": int(time.time()), "message_thread_id": thread_id}
        message |= {"forum_topic_created": {"name": name, "icon_color": 7322096}}
        message["is_topic_message"] = True
        self._state.put_user_message(chat_id, message)
        self._state.updates.push({"message": message})
        return thread_id

    def _know(self, *user_ids: int) -> None:
        for user_id in user_ids:
            if not self._state.knows_user(user_id):
                self._state.add_user(user_dict(user_id, "Test", None))
