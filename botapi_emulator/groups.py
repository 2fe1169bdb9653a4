"""Groups, supergroups (forums too) and channels: who is in them, as Telegram's Chat objects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from botapi_emulator.errors import ApiError

GroupKind = Literal["group", "supergroup"]
BotStatus = Literal["member", "administrator", "left", "kicked"]
SUPERGROUP_IDS_BELOW = -(10**12)  # supergroup and channel ids are -100 followed by 10+ digits


@dataclass
class Admin:
    """An administrator's (or the creator's) anonymity and custom title."""

    anonymous: bool = False
    custom_title: str | None = None


@dataclass
class Group:
    """A group, supergroup or channel: its members by status, forum topics and the bot's place."""

    chat_id: int
    kind: str  # "group", "supergroup" or "channel"
    title: str
    forum: bool = False
    username: str | None = None
    creator: int | None = None
    admins: dict[int, Admin] = field(default_factory=dict)  # the creator's own entry too
    members: set[int] = field(default_factory=set)  # plain members
    banned: set[int] = field(default_factory=set)
    bot_status: BotStatus = "member"
    linked_chat_id: int | None = None  # a channel's discussion group, or the group's channel
    topics: dict[int, str] = field(default_factory=dict)  # forum topic thread id -> name
    implicit: bool = False  # made up when a test wrote into an unregistered group id
    migrated_to: int | None = None  # the supergroup a basic group was upgraded to

    def status(self, user_id: int) -> str:
        """creator, administrator, member, kicked or left."""
        if user_id == self.creator:
            return "creator"
        if user_id in self.admins:
            return "administrator"
        if user_id in self.members:
            return "member"
        return "kicked" if user_id in self.banned else "left"

    def can_post(self, user_id: int) -> bool:
        """Whether this user may write here (channels take posts from the channel only)."""
        if self.kind == "channel" or self.migrated_to is not None:
            return False
        return self.status(user_id) not in ("left", "kicked")

    def add_member(self, user_id: int) -> None:
        """Join (lifts a ban); an administrator or the creator stays what they are."""
        self.banned.discard(user_id)
        if self.status(user_id) == "left":
            self.members.add(user_id)

    def remove_member(self, user_id: int, *, ban: bool = False) -> None:
        """Leave (or be banned); the creator cannot."""
        if user_id == self.creator:
            raise ValueError(f"user {user_id} created chat {self.chat_id} and cannot leave it")
        self.members.discard(user_id)
        self.admins.pop(user_id, None)
        if ban:
            self.banned.add(user_id)

    def promote(self, user_id: int, *, anonymous: bool, custom_title: str | None) -> None:
        """Make an administrator (joining if needed), or set the creator's anonymity and title."""
        self.add_member(user_id)
        self.members.discard(user_id)
        self.admins[user_id] = Admin(anonymous, custom_title)

    def demote(self, user_id: int) -> None:
        """An administrator becomes a plain member."""
        if user_id == self.creator or user_id not in self.admins:
            raise ValueError(f"user {user_id} is not an administrator of chat {self.chat_id}")
        del self.admins[user_id]
        self.members.add(user_id)

    def member_count(self) -> int:
        """getChatMemberCount: people in the chat, the bot included if it is in it."""
        people = set(self.members) | set(self.admins) | ({self.creator} - {None})
        return len(people) + (self.bot_status in ("member", "administrator"))

    def chat_object(self) -> dict[str, Any]:
        """The Chat object, as in updates and messages."""
        chat: dict[str, Any] = {"id": self.chat_id, "title": self.title, "type": self.kind}
        if self.username:
            chat["username"] = self.username
        if self.forum:
            chat["is_forum"] = True
        if self.kind == "group":
            chat["all_members_are_administrators"] = False  # still sent by the Bot API server
        return chat

    def bot_access_error(self, *, write: bool) -> ApiError | None:
        """What Telegram answers a bot not in the chat (or, posting in a channel, no admin)."""
        where = {"group": "group chat", "supergroup": "supergroup chat"}.get(
            self.kind, "channel chat"
        )
        if self.migrated_to is not None:
            return ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=self.migrated_to,
            )
        if self.bot_status == "kicked":
            return ApiError(403, f"Forbidden: bot was kicked from the {where}")
        if self.bot_status == "left":
            return ApiError(403, f"Forbidden: bot is not a member of the {where}")
        if write and self.kind == "channel" and self.bot_status != "administrator":
            return ApiError(400, "Bad Request: need administrator rights in the channel chat")
        return None


class ChatRegistry:
    """Every group, supergroup and channel the emulated Telegram knows, by chat id."""

    def __init__(self) -> None:
        self._groups: dict[int, Group] = {}

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
    ) -> Group:
        """Register a group or supergroup (the bot is a plain member of it)."""
        if kind == "group" and not SUPERGROUP_IDS_BELOW < chat_id < 0:
            raise ValueError(f"a basic group id is negative and above -10**12, not {chat_id}")
        if kind == "supergroup" and not chat_id < SUPERGROUP_IDS_BELOW:
            raise ValueError(f"a supergroup id looks like -100xxxxxxxxxx, not {chat_id}")
        if kind not in ("group", "supergroup"):
            raise ValueError(f"kind is 'group' or 'supergroup', not {kind!r}")
        if forum and kind != "supergroup":
            raise ValueError("only a supergroup can be a forum")
        group = self._new(Group(chat_id, kind, title, forum=forum, creator=creator))
        group.members.update(set(members) - {creator})
        for user_id in admins:
            if user_id != creator:
                group.promote(user_id, anonymous=False, custom_title=None)
        return group

    def upgrade(self, chat_id: int, new_chat_id: int) -> Group:
        """A basic group becomes a supergroup with a new id: the same title and people."""
        old = self.require(chat_id)
        if old.kind != "group" or old.migrated_to is not None:
            raise ValueError(f"chat {chat_id} is not a basic group that can be upgraded")
        new = self.create_group(new_chat_id, title=old.title, creator=old.creator)
        new.members = set(old.members)
        new.admins = dict(old.admins)
        new.bot_status = old.bot_status
        old.migrated_to = new_chat_id
        return new

    def create_channel(
        self, channel_id: int, *, title: str, username: str | None, bot_status: BotStatus
    ) -> Group:
        """Register a channel."""
        if not channel_id < SUPERGROUP_IDS_BELOW:
            raise ValueError(f"a channel id looks like -100xxxxxxxxxx, not {channel_id}")
        return self._new(
            Group(channel_id, "channel", title, username=username, bot_status=bot_status)
        )

    def group(self, chat_id: int) -> Group | None:
        """The group, supergroup or channel with this id, if registered."""
        return self._groups.get(chat_id)

    def require(self, chat_id: int) -> Group:
        """The registered group, supergroup or channel with this id (KeyError if none)."""
        group = self._groups.get(chat_id)
        if group is None or group.implicit:
            raise KeyError(f"no group or channel {chat_id}: create_group() / create_channel()")
        return group

    def chat_object(self, chat_id: int) -> dict[str, Any] | None:
        """The Chat object of a registered chat (None for private and unknown chats)."""
        group = self._groups.get(chat_id)
        return None if group is None else group.chat_object()

    def admit(self, chat_id: int, user_id: int) -> None:
        """Check a user may write in a group; an unregistered id becomes an open implicit group."""
        group = self._groups.get(chat_id)
        if group is None:  # the pre-registry behaviour: any id but the user's is a group
            kind = "supergroup" if chat_id < SUPERGROUP_IDS_BELOW else "group"
            group = Group(chat_id, kind, f"Test group {chat_id}", implicit=True)
            self._groups[chat_id] = group
        if group.implicit:
            group.add_member(user_id)
        elif not group.can_post(user_id):
            raise ValueError(
                f"user {user_id} may not write in {group.kind} {chat_id} "
                f"(status {group.status(user_id)!r}; add_member() first)"
            )

    def is_topic(self, chat_id: int, thread_id: int | None) -> bool:
        """Whether a thread id is a forum topic of this chat."""
        group = self._groups.get(chat_id)
        return group is not None and group.forum and thread_id in group.topics

    def _new(self, group: Group) -> Group:
        old = self._groups.get(group.chat_id)
        if old is not None and not old.implicit:
            raise ValueError(f"chat {group.chat_id} already exists")
        self._groups[group.chat_id] = group
        return group
