"""The bot's real PTB Application over the fake engine and the Bot API emulator, one update at
a time (issues 30 and 31): what the handler-level tests share.

Updates are taken from the emulator and run once each through `UpdateProcessor.run_once` (what
the inbox worker calls); no intake, no retries. The engine runs on the parametrized database
with the in-memory vector index and the bag-of-words encoder. A test module uses it with
`from tests.unit.handler_kit import kit, settings` (the fixtures) and the names it needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import build_application
from bot.context import BotApplication
from bot.processing import UpdateProcessor
from botapi_emulator import BotApiEmulator
from engine.app import MemoryEngine
from engine.schedule import Schedule
from engine.settings import Settings

ADMIN, USER, OTHER = 71_001, 71_002, 71_003
GROUP = -710_001


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with ADMIN in ADMIN_USER_IDS (`fake_engine` opens with these)."""
    return settings.model_copy(update={"admin_user_ids": (ADMIN,)})


@dataclass
class Kit:
    """The bot's Application over the fake engine, the emulator, and OTHER's data to guard."""

    app: BotApplication
    engine: MemoryEngine
    emulator: BotApiEmulator
    processor: UpdateProcessor
    other_reminder: int
    other_short_id: str
    offset: int = 0

    def __repr__(self) -> str:  # Hypothesis prints the arguments of a failing example
        return "Kit()"

    async def run(self, queue: Callable[[], object]) -> list[str]:
        """Queue one user action, run its update once; the texts and answers the bot sent."""
        sent_before = len(self.emulator.sent())
        answered_before = len(self.emulator.callback_answers)
        queue()
        updates = await self.app.bot.get_updates(offset=self.offset, timeout=0)
        assert updates, "the emulator queued no update"
        for update in updates:
            self.offset = update.update_id + 1
            error = await self.processor.run_once(update)
            assert error is None, f"a handler raised {error!r}: a retry, then a dead letter"
        sent = [m.text or m.caption or "" for m in self.emulator.sent()[sent_before:]]
        answers = [str(a.get("text") or "") for a in self.emulator.callback_answers]
        return sent + answers[answered_before:]

    def say(self, user_id: int, text: str) -> Callable[[], object]:
        """The action: `user_id` sends `text` in their private chat."""
        return lambda: self.emulator.user_message(user_id, text)

    async def others(self) -> tuple[Any, ...]:
        """What USER's actions must never change: OTHER's memories, reminders and role."""
        page = await self.engine.reads.page(space_id=OTHER, limit=100)
        reminders = await self.engine.reminders.upcoming(space_id=OTHER)
        user = await self.engine.users.get(user_id=OTHER)
        return (
            sorted((m.id, m.text, m.updated_at) for m in page.items),
            [(r.id, r.status, r.due_at) for r in reminders],
            None if user is None else user.role,
        )


@pytest.fixture
async def kit(settings: Settings, fake_engine: MemoryEngine) -> AsyncIterator[Kit]:
    emulator = BotApiEmulator()
    await emulator.start()
    emulator.create_group(GROUP, title="g", kind="group", members=[USER, OTHER], creator=ADMIN)
    engine = fake_engine
    for user_id in (ADMIN, USER, OTHER):
        await engine.users.register(user_id=user_id, username=f"u{user_id}")
    saved = await engine.writes.save(space_id=OTHER, text="other's secret plan")
    due = datetime.now(UTC) + timedelta(days=2)
    reminder = await engine.reminders.create(
        space_id=OTHER, user_id=OTHER, schedule=Schedule(due, "other's dentist"), timezone="UTC"
    )
    app = build_application(settings, engine, token=emulator.token, base_url=emulator.base_url)
    await app.initialize()
    kit = Kit(app, engine, emulator, UpdateProcessor(app), reminder.id, saved.memory.id.hex[:8])
    yield kit
    await app.shutdown()
    await emulator.stop()


def answered(replies: list[str]) -> None:
    assert replies, "no answer at all"
    assert not any("something went wrong" in r for r in replies), replies


def update_writes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The write transactions an update committed (the per-user quota counts are written
    behind for everyone, not per update: left out)."""
    lines = [r.getMessage() for r in caplog.records if r.name == "memorybot.tx"]
    return [
        line.split()[1] for line in lines if "outcome=committed" in line and "op=quota" not in line
    ]
