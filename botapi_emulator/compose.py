"""Composing incoming messages: id, date, chat, thread and reply, stored for later replies."""

from __future__ import annotations

import time
from typing import Any

from botapi_emulator.state import EmulatorState
from botapi_emulator.threads import place


class MessageComposer:
    """Builds the Message objects Telegram delivers, from a sender and content."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def compose(
        self,
        chat_id: int,
        sender: dict[str, Any],
        content: dict[str, Any],
        *,
        reply_to: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """A new message in a chat, stored; `sender`: its from/sender_chat/... fields.

        `reply_to` is any earlier message of the chat (a user's or the bot's); `thread_id` a forum
        topic (see threads.py). ValueError/KeyError for what Telegram would never deliver.
        """
        group = self._state.chats.group(chat_id)
        if thread_id is not None and (group is None or not group.forum):
            raise ValueError(f"chat {chat_id} has no topics: thread_id is for forum supergroups")
        replied_thread = None
        if reply_to is not None:
            replied = self._state.message_dict(chat_id, reply_to)
            if replied is None:
                raise KeyError(f"no message {reply_to} in chat {chat_id} to reply to")
            replied_thread = replied.get("message_thread_id")
        where = place(group, thread_id=thread_id, reply_to=reply_to, replied_thread=replied_thread)
        message_id = self._state.next_message_id(chat_id)
        message: dict[str, Any] = {"message_id": message_id, **sender}
        message |= {"chat": self._state.chat(chat_id), "date": int(time.time())}
        if where.thread_id is not None:
            message["message_thread_id"] = where.thread_id
        if where.shown_reply is not None:
            message["reply_to_message"] = self._state.message_dict(chat_id, where.shown_reply)
        if where.is_topic:
            message["is_topic_message"] = True
        message |= content
        self._state.put_user_message(chat_id, message)
        return message
