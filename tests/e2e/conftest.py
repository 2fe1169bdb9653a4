"""End-to-end harness: the real Application over HTTP against our local Bot API emulator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.intake import PollingIntake
from bot.processing import UpdateProcessor
from bot.runner import BotRuntime, polling_intake, running_bot
from botapi_emulator import BotApiEmulator, SentMessage
from engine.app import MemoryEngine
from engine.settings import Settings
from storage.db import open_database
from storage.repositories import Repositories


class BotUnderTest:
    """Starts, stops and restarts the bot; `say` sends a message and returns the new replies."""

    def __init__(self, settings: Settings, emulator: BotApiEmulator) -> None:
        self.settings = settings
        self.emulator = emulator
        self._stack: contextlib.AsyncExitStack | None = None
        self.runtime: BotRuntime | None = None
        self.processor: UpdateProcessor | None = None
        self.intake: PollingIntake | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def engine(self) -> MemoryEngine:
        assert self.processor is not None
        return self.processor.services.engine

    async def start(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self.runtime = await self._stack.enter_async_context(
            running_bot(self.settings, token=self.emulator.token, base_url=self.emulator.base_url)
        )
        self.processor = self.runtime.processor
        self.processor.backoff_s = 0.05
        self.intake = polling_intake(self.runtime, poll_timeout_s=1)
        self._task = asyncio.create_task(self.intake.run())

    async def stop(self) -> None:
        assert self.intake is not None
        assert self._task is not None
        assert self._stack is not None
        self.intake.stop()
        await self._task
        await self._stack.aclose()

    async def settled(self, within_s: float = 30.0) -> None:
        """Wait until every queued update was confirmed, stored and finished."""
        assert self.runtime is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while (
            self.emulator.pending_updates()
            or (await self.runtime.inbox.depth())[0]
            or self.runtime.worker.busy
        ):
            if loop.time() > deadline:
                raise TimeoutError("updates still waiting to be processed")
            await asyncio.sleep(0.05)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def say(
        self, user_id: int, text: str, *, replies: int = 1, **kwargs: Any
    ) -> list[SentMessage]:
        """Send `text` as `user_id` and wait for `replies` new bot messages in that chat."""
        chat_id = kwargs.get("chat_id") or user_id
        before = len(self.emulator.sent(chat_id))
        self.emulator.user_message(user_id, text, **kwargs)
        sent = await self.emulator.wait_for(chat_id=chat_id, count=before + replies)
        return sent[before:]

    async def press(self, user_id: int, message: SentMessage, index: int = 0) -> dict[str, Any]:
        """Press the `index`-th inline button of `message` (in its chat: a private chat or a
        group); returns the callback answer."""
        markup = message.reply_markup or {}
        data = [b["callback_data"] for row in markup["inline_keyboard"] for b in row][index]
        return await self.press_data(user_id, message.message_id, data, chat_id=message.chat_id)

    async def press_data(
        self, user_id: int, message_id: int, data: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """Press `data` on a bot message in `chat_id` (default: the user's private chat)."""
        answered = len(self.emulator.callback_answers)
        self.emulator.press_button(user_id, message_id, data, chat_id=chat_id)
        for _ in range(200):
            if len(self.emulator.callback_answers) > answered:
                return self.emulator.callback_answers[answered]
            await asyncio.sleep(0.05)
        raise TimeoutError("the bot never answered the button press")


async def inbox_pending(settings: Settings) -> int:
    """Updates stored in the inbox and not finished, read straight from SQL (for a bot that
    runs, or ran, in another process)."""
    db = open_database(settings.database_url)
    try:
        async with db.reads() as session:
            return (await Repositories(session).inbox.depth())[0]
    finally:
        await db.dispose()


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    emu = BotApiEmulator()
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """The running bot on the parametrized database (SQLite and PostgreSQL)."""
    under_test = BotUnderTest(settings, emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()


@pytest.fixture(autouse=True)
async def no_task_left_behind() -> AsyncIterator[None]:
    """After each test (and its bot's teardown), cancel what is still running, again and
    again for a few seconds: a task that swallows one cancellation (Python 3.11's wait_for
    can) would otherwise hang the event loop's close for ever. Stragglers are printed."""
    yield
    current = asyncio.current_task()
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not left:
            return
        if asyncio.get_running_loop().time() > deadline:
            for task in left:
                task.print_stack()
            return
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=0.1)
