"""Who acts in an update, and in which space: the gate's rules for senders, per the Bot API.

A memory belongs to a space, the chat it was saved in: a private chat is its user's personal
space (chat id == user id), a group or supergroup is that group's shared space (negative id).
The actor is the user who sent the message or pressed the button, or, for an anonymous group
administrator (`from` GroupAnonymousBot, `sender_chat` the group itself), the group.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Message, Update
from telegram.constants import ChatType

GROUP_ANONYMOUS_BOT = 1087968824  # `from` of an anonymous group administrator's messages
CHANNEL_BOT = 136817688  # `from` of messages a channel sends into a group
TELEGRAM_SERVICE = 777000  # `from` of Telegram's own notifications and channel forwards
STAND_INS = frozenset({GROUP_ANONYMOUS_BOT, CHANNEL_BOT, TELEGRAM_SERVICE})


@dataclass(frozen=True)
class Actor:
    """Who acts, and in which space (the chat of the update)."""

    id: int  # the user, or the group itself for an anonymous administrator
    space_id: int  # the chat: the user's personal space, or a group's shared space
    private: bool  # a private chat (the personal space of `id`)
    anonymous: bool  # an anonymous administrator of the group `space_id`
    held: int | None = None  # the space's live memories, as its quota check counted them

    @property
    def in_group(self) -> bool:
        """The update came from a group or supergroup."""
        return not self.private


def sent_message(update: Update) -> Message | None:
    """The message a user sent or edited (not the bot message under a pressed button)."""
    return update.message or update.edited_message


def speaks_for_chat(message: Message) -> bool:
    """An anonymous administrator of this group: GroupAnonymousBot on behalf of the chat."""
    sender, user = message.sender_chat, message.from_user
    return (
        sender is not None
        and sender.id == message.chat.id
        and user is not None
        and user.id == GROUP_ANONYMOUS_BOT
    )


def admitted(update: Update) -> bool:
    """False for what the bot must ignore: channel posts, automatic forwards, messages a
    channel sends into a group, Telegram's stand-in senders, and updates without a sender."""
    if update.channel_post or update.edited_channel_post:
        return False
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None or chat.type == ChatType.CHANNEL:
        return False
    message = sent_message(update)
    if message is None:
        return user.id not in STAND_INS
    if message.is_automatic_forward:
        return False
    if message.sender_chat is not None or user.id == GROUP_ANONYMOUS_BOT:
        return speaks_for_chat(message)
    return user.id not in STAND_INS


def actor_of(update: Update) -> Actor:
    """The actor of an admitted update (see `admitted`)."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None
    assert chat is not None
    message = sent_message(update)
    anonymous = message is not None and speaks_for_chat(message)
    return Actor(
        id=chat.id if anonymous else user.id,
        space_id=chat.id,
        private=chat.type == ChatType.PRIVATE,
        anonymous=anonymous,
    )


def topic_of(message: Message | None) -> int | None:
    """The forum topic a message was sent in (None outside forum topics)."""
    if isinstance(message, Message) and message.is_topic_message:
        return message.message_thread_id
    return None


def thread_of(update: Update) -> int | None:
    """Where replies to this update go: the forum topic of its message, if any."""
    return topic_of(update.effective_message)
