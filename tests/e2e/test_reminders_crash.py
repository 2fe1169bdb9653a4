"""A reminder survives SIGKILL between "due" and "sent": delivered once after the restart.

The bot runs as a real process (`python -m bot.cli run`) against the emulator in the test
process. The first process SIGKILLs itself right after its first claim committed: the due
reminders are `sending`, none is sent. The second process must send each exactly once:
on SQLite it voids the dead process's claims at start; on PostgreSQL (several processes may
share the outbox) it waits for their leases to run out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from botapi_emulator import BotApiEmulator
from engine.app import open_engine
from engine.reminders import DONE, Reminder
from engine.schedule import Schedule
from engine.settings import Settings
from storage.embedder import Embedder
from tests.e2e import test_broadcast_crash as kit

pytestmark = pytest.mark.slow

USERS = [61_001 + i for i in range(6)]
EXIT_TIMEOUT_S = 30.0
REDELIVERY_TIMEOUT_S = 90.0  # PostgreSQL: the dead claim's 30 s lease must run out first
# `memorybot run`, except that the process SIGKILLs itself as soon as a claim that took
# reminders has committed (before anything was sent).
CRASH_AFTER_CLAIM = """
import os, signal, sys
from engine.reminder_outbox import ReminderOutbox

_claim = ReminderOutbox.claim_due

async def claim_due(self, **kwargs):
    claimed = await _claim(self, **kwargs)
    if claimed:
        os.kill(os.getpid(), signal.SIGKILL)
    return claimed

ReminderOutbox.claim_due = claim_due
from bot.cli import main
sys.exit(main(["run"]))
"""


class Launcher(kit.Launcher):
    """kit.Launcher, able to run a script instead of `-m bot.cli run`."""

    async def run_script(self, script: str) -> asyncio.subprocess.Process:
        log = self.tmp_path / f"bot-{len(self.logs) + 1}.log"
        self.logs.append(log)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                script,
                env=self.env,
                cwd=self.tmp_path,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
            )
        finally:
            os.close(fd)
        self.live.append(process)
        return process


def copies(emulator: BotApiEmulator) -> Counter[int]:
    return Counter(m.chat_id for m in emulator.sent() if (m.text or "").startswith("⏰ "))


async def reminders_of(settings: Settings, ids: dict[int, int]) -> list[Reminder]:
    engine = await kit.with_engine(settings)
    try:
        found = []
        for user, reminder_id in ids.items():
            reminder = await engine.reminders.get(space_id=user, reminder_id=reminder_id)
            assert reminder is not None
            found.append(reminder)
        return found
    finally:
        await kit.close_engine(engine)


async def test_sigkill_between_claim_and_send_delivers_each_reminder_once(
    emulator: BotApiEmulator,
    settings: Settings,
    tmp_path: Path,
    real_encode: Callable[[list[str]], np.ndarray],
) -> None:
    launcher = Launcher(emulator, settings, tmp_path)
    with kit.fresh_chroma():
        engine = await open_engine(settings, embedder=Embedder(real_encode))
    try:
        due = datetime.now(UTC) + timedelta(seconds=1)
        ids: dict[int, int] = {}
        for user in USERS:
            await engine.users.register(user_id=user)
            made = await engine.reminders.create(
                space_id=user, user_id=user, schedule=Schedule(due, "take out the bins"),
                timezone="UTC",
            )  # fmt: skip
            ids[user] = made.id
    finally:
        await kit.close_engine(engine)
    try:
        with kit.logs_on_failure(launcher):
            crashing = await launcher.run_script(CRASH_AFTER_CLAIM)
            code = await asyncio.wait_for(crashing.wait(), kit.BOOT_TIMEOUT_S)
            assert code == -signal.SIGKILL, "the bot never claimed the due reminders"
            assert copies(emulator) == Counter(), "nothing may be sent before the kill"
            claimed = await reminders_of(settings, ids)
            assert {r.status for r in claimed} == {"sending"}, "the claim was committed"

            second = await launcher.run_bot()
            await kit.wait_until(
                lambda: set(copies(emulator)) == set(USERS),
                REDELIVERY_TIMEOUT_S,
                "every reminder to be delivered after the restart",
                second,
            )
            await asyncio.sleep(2.0)  # a duplicate would come within the worker's poll
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), EXIT_TIMEOUT_S) == 0
    finally:
        await launcher.cleanup()
    assert copies(emulator) == Counter({user: 1 for user in USERS})
    finished = await reminders_of(settings, ids)
    assert {(r.status, r.occurrence) for r in finished} == {(DONE, 1)}
