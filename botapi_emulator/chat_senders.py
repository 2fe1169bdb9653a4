"""Messages sent on behalf of chats: anonymous group administrators, posts in a channel as
the channel, channel posts and their automatic forwards into the linked discussion group."""

from __future__ import annotations

from typing import Any

from botapi_emulator.compose import MessageComposer
from botapi_emulator.formatting import command_entities
from botapi_emulator.groups import Group
from botapi_emulator.model import CHANNEL_BOT, GROUP_ANONYMOUS_BOT
from botapi_emulator.state import EmulatorState


class ChatSenders:
    """Queues the updates of messages whose sender is a chat (sender_chat), as Telegram does."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._composer = MessageComposer(state)

    def anonymous_admin_message(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        thread_id: int | None = None,
        author_signature: str | None = None,
    ) -> int:
        """Queue a message from an anonymous administrator: from GroupAnonymousBot, sender_chat
        the group itself, author_signature their custom title if any; its message_id."""
        group = self._supergroup(chat_id)
        sender: dict[str, Any] = {"from": dict(GROUP_ANONYMOUS_BOT)}
        if author_signature:
            sender["author_signature"] = author_signature
        sender["sender_chat"] = group.chat_object()
        return self._queue(chat_id, sender, text, reply_to=reply_to, thread_id=thread_id)

    def message_as_channel(
        self,
        chat_id: int,
        channel_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        thread_id: int | None = None,
    ) -> int:
        """Queue a message a user posted in the group as their channel: from Channel_Bot,
        sender_chat the channel, no is_automatic_forward; its message_id."""
        self._supergroup(chat_id)
        channel = self._channel(channel_id, bot_admin=False)
        sender = {"from": dict(CHANNEL_BOT), "sender_chat": channel.chat_object()}
        return self._queue(chat_id, sender, text, reply_to=reply_to, thread_id=thread_id)

    def channel_post(
        self, channel_id: int, text: str, *, author_signature: str | None = None
    ) -> int:
        """Queue a channel_post update (no `from`; sender_chat and chat are the channel); its
        message_id in the channel. An unknown channel is created with the bot as its admin."""
        channel = self._channel(channel_id)
        if channel.bot_status != "administrator":
            raise ValueError(f"the bot does not administer channel {channel_id}: no posts for it")
        sender: dict[str, Any] = {"sender_chat": channel.chat_object()}
        if author_signature:
            sender["author_signature"] = author_signature
        post = self._composer.compose(channel_id, sender, _text(text))
        self._state.updates.push({"channel_post": post})
        return int(post["message_id"])

    def channel_forward(self, chat_id: int, channel_id: int, text: str) -> int:
        """A channel post automatically forwarded into its linked discussion group; the group
        message's message_id. from Channel_Bot, sender_chat the channel, is_automatic_forward,
        forward_origin of type "channel". An unknown channel is created (and linked) without the
        bot; a channel the bot administers also queues its channel_post first, as Telegram does.
        """
        group = self._supergroup(chat_id)
        channel = self._channel(channel_id, bot_admin=False)
        if channel.linked_chat_id not in (None, chat_id):
            raise ValueError(f"channel {channel_id} is linked to {channel.linked_chat_id}")
        if group.linked_chat_id not in (None, channel_id):
            raise ValueError(f"group {chat_id} is linked to channel {group.linked_chat_id}")
        channel.linked_chat_id, group.linked_chat_id = chat_id, channel_id
        post = self._composer.compose(
            channel_id, {"sender_chat": channel.chat_object()}, _text(text)
        )
        if channel.bot_status == "administrator":
            self._state.updates.push({"channel_post": post})
        origin = {"chat": channel.chat_object(), "message_id": post["message_id"]}
        sender = {"from": dict(CHANNEL_BOT), "sender_chat": channel.chat_object()}
        forwarded = {
            "forward_origin": {"type": "channel", **origin, "date": post["date"]},
            "is_automatic_forward": True,
            "forward_from_chat": origin["chat"],  # the pre-7.0 fields the server still sends
            "forward_from_message_id": origin["message_id"],
            "forward_date": post["date"],
            **_text(text),
        }
        message = self._composer.compose(chat_id, sender, forwarded)
        self._state.updates.push({"message": message})
        return int(message["message_id"])

    def _queue(
        self,
        chat_id: int,
        sender: dict[str, Any],
        text: str,
        *,
        reply_to: int | None,
        thread_id: int | None,
    ) -> int:
        message = self._composer.compose(
            chat_id, sender, _text(text), reply_to=reply_to, thread_id=thread_id
        )
        self._state.updates.push({"message": message})
        return int(message["message_id"])

    def _supergroup(self, chat_id: int) -> Group:
        group = self._state.chats.require(chat_id)
        if group.kind != "supergroup":
            raise ValueError(f"chat {chat_id} is a {group.kind}: only supergroups have this")
        return group

    def _channel(self, channel_id: int, *, bot_admin: bool = True) -> Group:
        if self._state.chats.group(channel_id) is None:
            self._state.chats.create_channel(
                channel_id,
                title=f"Test channel {channel_id}",
                username=None,
                bot_status="administrator" if bot_admin else "left",
            )
        channel = self._state.chats.require(channel_id)
        if channel.kind != "channel":
            raise ValueError(f"chat {channel_id} is a {channel.kind}, not a channel")
        return channel


def _text(text: str) -> dict[str, Any]:
    found = command_entities(text)
    return {"text": text, **({"entities": found} if found else {})}
