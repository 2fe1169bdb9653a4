"""The emulator's state: chats, users, messages both ways, files, updates, faults, observations."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from botapi_emulator.commands import CallbackQueries, CommandSets
from botapi_emulator.faults import Faults
from botapi_emulator.groups import ChatRegistry
from botapi_emulator.limits import SendLimits
from botapi_emulator.model import (
    SentMessage,
    Upload,
    bot_message_dict,
    file_ref,
    private_chat,
    user_dict,
)
from botapi_emulator.signals import Signal
from botapi_emulator.updates import UpdateQueue


class EmulatorState:
    """Everything the emulated Telegram knows; shared by the HTTP side and the test side."""

    def __init__(self, token: str, bot_username: str) -> None:
        self.token = token
        self.bot_username = bot_username
        prefix = token.split(":", 1)[0]
        self.bot_user: dict[str, Any] = {
            "id": int(prefix) if prefix.isdigit() else 123456,
            "is_bot": True,
            "first_name": "MemoryBot Test",
            "username": bot_username,
        }
        self.calls: list[tuple[float, str, dict[str, Any]]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.webhook_url = ""
        self.sent_signal = Signal()
        self.updates = UpdateQueue()
        self.faults = Faults()
        self.chats = ChatRegistry()  # groups, supergroups and channels
        self.limits = SendLimits()
        self.callbacks = CallbackQueries()
        self.command_sets = CommandSets(self.chats)
        self._next_ids: dict[int, int] = {}
        self._user_msgs: dict[tuple[int, int], dict[str, Any]] = {}
        self._sent: list[SentMessage] = []
        self._by_key: dict[tuple[int, int], SentMessage] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._files: dict[str, Upload] = {}
        self._send_seconds: Counter[int] = Counter()
        self._t0 = time.monotonic()

    # ---- observing ---------------------------------------------------------------------------
    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        """Bot messages in send order (current state), optionally for one chat."""
        return [m for m in self._sent if chat_id is None or m.chat_id == chat_id]

    async def wait_for(
        self,
        predicate: Callable[[list[SentMessage]], bool] | None = None,
        *,
        chat_id: int | None = None,
        count: int | None = None,
        timeout: float = 15.0,  # noqa: ASYNC109
    ) -> list[SentMessage]:
        """Wait until sent(chat_id) has >= count messages (default 1) and predicate holds."""
        need = 1 if count is None and predicate is None else count or 0
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.sent(chat_id)
            if len(msgs) >= need and (predicate is None or predicate(msgs)):
                return msgs
            left = deadline - time.monotonic()
            if left <= 0:
                shown = "\n".join(
                    f"  chat {m.chat_id} #{m.message_id}: {m.text or m.caption!r}"[:200]
                    for m in msgs[-10:]
                )
                recent = ", ".join(method for _, method, _ in self.calls[-15:])
                raise TimeoutError(
                    f"wait_for timed out after {timeout}s (chat_id={chat_id}, count={count}); "
                    f"{len(msgs)} sent:\n{shown or '  (nothing)'}\nlast calls: {recent}"
                )
            await self.sent_signal.wait(min(left, 0.5))

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed."""
        return self.updates.pending()

    def sends_per_second(self) -> dict[int, int]:
        """Successful sendMessage calls per whole second since the emulator was created."""
        return dict(sorted(self._send_seconds.items()))

    def record_call(self, method: str, params: dict[str, Any]) -> None:
        """Note a Bot API request (as logged) in `calls`."""
        self.calls.append((time.monotonic(), method, params))

    # ---- chats, users and their messages -----------------------------------------------------
    def next_message_id(self, chat_id: int) -> int:
        """Message ids are per chat and shared between user and bot messages."""
        self._next_ids[chat_id] = self._next_ids.get(chat_id, 0) + 1
        return self._next_ids[chat_id]

    def chat(self, chat_id: int) -> dict[str, Any]:
        """The Chat object for a chat id (a private chat if never seen)."""
        return self.chats.chat_object(chat_id) or self._chats.get(chat_id) or private_chat(chat_id)

    def has_chat(self, chat_id: int) -> bool:
        """Whether a user ever wrote in this private chat, or it is a known group or channel."""
        return chat_id in self._chats or self.chats.group(chat_id) is not None

    def add_chat(self, chat: dict[str, Any]) -> None:
        """Remember (or replace) the Chat object of a private chat."""
        self._chats[int(chat["id"])] = chat

    def user(self, user_id: int) -> dict[str, Any]:
        """The User object of a user (a default one if never seen)."""
        return self._users.get(user_id) or user_dict(user_id, "Test", None)

    def add_user(self, user: dict[str, Any]) -> None:
        """Remember (or replace) a User object."""
        self._users[int(user["id"])] = user

    def knows_user(self, user_id: int) -> bool:
        """Whether this user ever wrote or was put in a group."""
        return user_id in self._users

    def message_dict(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """Any message of a chat (a user's or the bot's) as a reply_to_message: no nested reply."""
        found = self._user_msgs.get((chat_id, message_id))
        if found is not None:
            return {k: v for k, v in found.items() if k != "reply_to_message"}
        sent = self._by_key.get((chat_id, message_id))
        return None if sent is None or sent.deleted else self.bot_message(sent, nested=True)

    def user_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """A message a user sent (its latest version), if still there."""
        return self._user_msgs.get((chat_id, message_id))

    def put_user_message(self, chat_id: int, message: dict[str, Any]) -> None:
        """Store (or replace after an edit) a user message."""
        self._user_msgs[(chat_id, int(message["message_id"]))] = message

    def delete_user_message(self, chat_id: int, message_id: int) -> bool:
        """Forget a user message; False if there was none."""
        return self._user_msgs.pop((chat_id, message_id), None) is not None

    # ---- files -------------------------------------------------------------------------------
    def store_file(self, upload: Upload) -> dict[str, Any]:
        """Remember file bytes; returns file_id/file_unique_id/file_size."""
        file_id, ref = file_ref(len(self._files) + 1, upload)
        self._files[file_id] = upload
        return ref

    def file(self, file_id: str) -> Upload | None:
        """A stored file by file_id."""
        return self._files.get(file_id)

    # ---- bot messages ------------------------------------------------------------------------
    def record_sent(self, message: SentMessage) -> None:
        """Store a new bot message and wake wait_for()."""
        self._sent.append(message)
        self._by_key[(message.chat_id, message.message_id)] = message
        if message.document is None and message.text is not None:
            self._send_seconds[int(time.monotonic() - self._t0)] += 1
        self.sent_signal.fire()

    def message_changed(self) -> None:
        """A bot message was edited or deleted: wake wait_for()."""
        self.sent_signal.fire()

    def sent_message(self, chat_id: int, message_id: int) -> SentMessage | None:
        """A bot message by chat and id (deleted ones included)."""
        return self._by_key.get((chat_id, message_id))

    def bot_message(self, sent: SentMessage, *, nested: bool = False) -> dict[str, Any]:
        """The Message object Telegram returns for a bot message (nested: without its reply)."""
        upload = None
        if sent.document is not None and sent.file_id is not None:
            upload = self._files[sent.file_id]
        topic = self.chats.is_topic(sent.chat_id, sent.thread_id)
        shown = sent.reply_to if sent.reply_to is not None or not topic else sent.thread_id
        reply = None if nested or shown is None else self.message_dict(sent.chat_id, shown)
        return bot_message_dict(
            sent,
            sender=self.bot_user,
            chat=self.chat(sent.chat_id),
            upload=upload,
            reply_to_message=reply,
            is_topic_message=topic,
        )
