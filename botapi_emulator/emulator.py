"""BotApiEmulator: the emulator's one public face, composing state, user activity and server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botapi_emulator.chat_senders import ChatSenders
from botapi_emulator.commands import CallbackQueries, CommandSets
from botapi_emulator.control import ControlApi
from botapi_emulator.group_setup import GroupSetup
from botapi_emulator.methods import BotApiMethods
from botapi_emulator.model import SentMessage
from botapi_emulator.server import ApiServer
from botapi_emulator.signals import Signal
from botapi_emulator.state import EmulatorState
from botapi_emulator.users import UserActivity


class BotApiEmulator:
    """An in-process Telegram Bot API server with user-activity injection and fault knobs."""

    def __init__(
        self,
        *,
        token: str = "123456:TEST",
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "memorybot_test_bot",
    ) -> None:
        self.state = EmulatorState(token, bot_username)
        self.users = UserActivity(self.state)
        self.groups = GroupSetup(self.state)
        self.chat_senders = ChatSenders(self.state)
        methods = BotApiMethods(self.state, lambda sent: self.record_sent(sent))  # overridable
        control = ControlApi(self.state, self.users, self.groups, self.chat_senders)
        self.server = ApiServer(self.state, methods, control, host=host, port=port)
        # Faults, groups and channels, composed: each name is the bound method documented there.
        self.fail = self.state.faults.fail  # the next calls of a method fail (retry_after: 429)
        self.slow = self.state.faults.slow  # the next calls of a method are slow
        self.block = self.state.faults.block  # sends to a chat answer 403 until unblock()
        self.unblock = self.state.faults.unblock
        self.create_group = self.groups.create_group
        self.create_channel = self.groups.create_channel
        self.upgrade_group = self.groups.upgrade_group
        self.create_topic = self.groups.create_topic
        self.add_member = self.groups.add_member
        self.remove_member = self.groups.remove_member
        self.promote = self.groups.promote
        self.demote = self.groups.demote
        self.set_bot_status = self.groups.set_bot_status
        self.set_bot_admin = self.groups.set_bot_admin
        self.anonymous_admin_message = self.chat_senders.anonymous_admin_message
        self.message_as_channel = self.chat_senders.message_as_channel
        self.channel_forward = self.chat_senders.channel_forward
        self.channel_post = self.chat_senders.channel_post

    # ---- serving -----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The interface the server binds."""
        return self.server.host

    @property
    def port(self) -> int:
        """The server's port (the real one once started)."""
        return self.server.port

    @property
    def base_url(self) -> str:
        """Pass as Bot(base_url=...); PTB appends the token and the method."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """Pass as Bot(base_file_url=...)."""
        return f"http://{self.host}:{self.port}/file/bot"

    async def start(self) -> None:
        """Bind and serve (port 0 picks a free port)."""
        await self.server.start()

    async def stop(self) -> None:
        """Release long polls and shut the server down."""
        await self.server.stop()

    # ---- what the emulated Telegram knows ----------------------------------------------------
    @property
    def token(self) -> str:
        """The only token the server accepts."""
        return self.state.token

    @property
    def bot_user(self) -> dict[str, Any]:
        """The bot's User object (getMe)."""
        return self.state.bot_user

    @property
    def calls(self) -> list[tuple[float, str, dict[str, Any]]]:
        """Every Bot API request: (monotonic time, method, params with uploads summarised)."""
        return self.state.calls

    @property
    def callback_answers(self) -> list[dict[str, Any]]:
        """answerCallbackQuery calls accepted, in order."""
        return self.state.callback_answers

    @property
    def commands(self) -> list[dict[str, Any]]:
        """The command list last set with setMyCommands (any scope)."""
        return self.state.command_sets.latest

    @property
    def menus(self) -> CommandSets:
        """Command lists per scope: `menus.menu("chat", chat_id=…)` is one scope's names (None:
        not set), `menus.shown(chat_id, user_id)` what that user sees there."""
        return self.state.command_sets

    @property
    def confirmed_offset(self) -> int:
        """The highest getUpdates offset the bot confirmed."""
        return self.state.updates.confirmed_offset

    @property
    def webhook_url(self) -> str:
        """The URL of setWebhook ("" while polling)."""
        return self.state.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str) -> None:
        self.state.webhook_url = url

    @property
    def sent_signal(self) -> Signal:
        """Fired whenever a bot message is sent, edited or deleted."""
        return self.state.sent_signal

    @property
    def updates_signal(self) -> Signal:
        """Fired whenever an update is queued."""
        return self.state.updates.signal

    @property
    def _callbacks(self) -> CallbackQueries:
        """Legacy `emulator._callbacks.add(query_id)` (tests/e2e/test_fuzz.py): add_callback()."""
        return self.state.callbacks

    @property
    def group_send_limit(self) -> int | None:
        """Bot messages a group takes per minute before 429 (Telegram: 20); None: no limit.

        Groups made up by writing into an unregistered id (see user_message) are never limited.
        """
        return self.state.limits.group_per_minute

    @group_send_limit.setter
    def group_send_limit(self, per_minute: int | None) -> None:
        self.state.limits.group_per_minute = per_minute

    # ---- injecting user activity -------------------------------------------------------------
    def user_message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        first_name: str = "Test",
        username: str | None = None,
        entities: list[dict[str, Any]] | None = None,
        reply_to: int | None = None,
        thread_id: int | None = None,
    ) -> int:
        """Queue a text message from a user (in their private chat unless chat_id is a group they
        are in); reply_to: an earlier message of the chat; thread_id: a forum topic."""
        return self.users.user_message(
            user_id,
            text,
            chat_id=chat_id,
            first_name=first_name,
            username=username,
            entities=entities,
            reply_to=reply_to,
            thread_id=thread_id,
        )

    def user_photo(
        self, user_id: int, caption: str | None = None, *, chat_id: int | None = None
    ) -> int:
        """Queue a photo message (three sizes, optional caption)."""
        return self.users.user_photo(user_id, caption, chat_id=chat_id)

    def user_document(
        self,
        user_id: int,
        file_name: str,
        caption: str | None = None,
        *,
        content: bytes = b"hello\n",
        chat_id: int | None = None,
        reply_to: int | None = None,
    ) -> int:
        """Queue a document message; its bytes can be fetched with getFile + the file URL."""
        return self.users.user_document(
            user_id, file_name, caption, content=content, chat_id=chat_id, reply_to=reply_to
        )

    def user_sticker(self, user_id: int, *, chat_id: int | None = None) -> int:
        """Queue a sticker message."""
        return self.users.user_sticker(user_id, chat_id=chat_id)

    def user_edit(
        self, user_id: int, message_id: int, new_text: str, *, chat_id: int | None = None
    ) -> None:
        """Queue an edited_message update for an earlier user text message."""
        self.users.user_edit(user_id, message_id, new_text, chat_id=chat_id)

    def press_button(
        self,
        user_id: int,
        message_id: int,
        callback_data: str,
        *,
        chat_id: int | None = None,
        strict: bool = True,
    ) -> str:
        """Queue a callback_query on a bot message; strict: the button must be on it now."""
        return self.users.press_button(
            user_id, message_id, callback_data, chat_id=chat_id, strict=strict
        )

    def raw_update(self, update: dict[str, Any]) -> int:
        """Queue any JSON as an update (update_id assigned if missing); returns the update_id."""
        return self.users.raw_update(update)

    def next_message_id(self, chat_id: int) -> int:
        """Take the next message id of a chat (for hand-made updates)."""
        return self.state.next_message_id(chat_id)

    def add_callback(self, query_id: str) -> None:
        """Accept one answer to a callback query with this id (for hand-made updates)."""
        self.state.callbacks.add(query_id)

    # ---- observing ---------------------------------------------------------------------------
    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        """Bot messages in send order (current state), optionally for one chat."""
        return self.state.sent(chat_id)

    async def wait_for(
        self,
        predicate: Callable[[list[SentMessage]], bool] | None = None,
        *,
        chat_id: int | None = None,
        count: int | None = None,
        timeout: float = 15.0,  # noqa: ASYNC109
    ) -> list[SentMessage]:
        """Wait until sent(chat_id) has >= count messages (default 1) and predicate holds."""
        return await self.state.wait_for(predicate, chat_id=chat_id, count=count, timeout=timeout)

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed."""
        return self.state.pending_updates()

    def sends_per_second(self) -> dict[int, int]:
        """Successful sendMessage calls per whole second since the emulator was created."""
        return self.state.sends_per_second()

    def record_sent(self, message: SentMessage) -> None:
        """Store a new bot message and wake wait_for() (override to observe every send)."""
        self.state.record_sent(message)

    def bot_message(self, sent: SentMessage) -> dict[str, Any]:
        """The Message object Telegram returns for a bot message."""
        return self.state.bot_message(sent)
