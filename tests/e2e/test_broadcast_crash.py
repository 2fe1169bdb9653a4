"""A broadcast survives SIGKILL: the real `memorybot run` killed mid-broadcast resumes it.

The Bot API emulator runs in the test process; the bot runs as a real subprocess
(`python -m bot.cli run`). 300 recipients are registered before it starts. The admin sends
/broadcast and presses Send; once about a third got it, the process is SIGKILLed and a second
one started. It must finish the broadcast: every recipient holds exactly one copy.

Each delivery row is marked right after Telegram accepted the send, so a kill landing between
the two re-sends that one message after the restart (at-least-once). The kill is timed for a
pause between the worker's bursts, where no send is in flight; should a duplicate still appear,
the failure says so.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from chromadb.api.shared_system_client import SharedSystemClient

from botapi_emulator import BotApiEmulator, SentMessage
from engine.app import MemoryEngine, open_engine
from engine.broadcast_types import BroadcastProgress
from engine.settings import Settings
from storage.embedder import Embedder

pytestmark = pytest.mark.slow

ADMIN = 9_301
FIRST_RECIPIENT = 700_001
RECIPIENTS = 300
# Bursts of RATE sends a second; the kill waits for a quiet gap between two. At 50/s a bot
# slowed by a busy machine (parallel workers) sent its bursts back to back and the whole
# broadcast was out before a gap came: at 20/s a burst takes a fraction of its second.
RATE = 20
TEXT = "Scheduled maintenance: memorybot restarts at 03:00 UTC for about five minutes."
BOOT_TIMEOUT_S = 120.0
FINISH_TIMEOUT_S = 180.0
EXIT_TIMEOUT_S = 30.0
QUIET_S = 0.3  # no send for this long: the worker is between bursts, nothing in flight


def no_model(texts: list[str]) -> np.ndarray:
    raise AssertionError("this engine only registers users; it never embeds")


@contextmanager
def fresh_chroma() -> Iterator[None]:
    """Forget Chroma's per-process cache on the way in and out (as a new process would)."""
    SharedSystemClient.clear_system_cache()
    try:
        yield
    finally:
        SharedSystemClient.clear_system_cache()


async def with_engine(settings: Settings) -> MemoryEngine:
    with fresh_chroma():
        return await open_engine(settings, embedder=Embedder(no_model))


async def close_engine(engine: MemoryEngine) -> None:
    with fresh_chroma():
        await engine.aclose()


class Launcher:
    """`python -m bot.cli run` against the emulator, one log file per process."""

    def __init__(self, emulator: BotApiEmulator, settings: Settings, tmp_path: Path) -> None:
        self.emulator = emulator
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": emulator.token,
            "TELEGRAM_API_BASE_URL": emulator.base_url,
            "DATABASE_URL": settings.database_url,
            "CHROMA_PATH": str(settings.chroma_path),
            "CHROMA_SHARDS": str(settings.chroma_shards),
            "ADMIN_USER_IDS": str(ADMIN),
            "BROADCAST_RATE": str(RATE),
            "TELEGRAM_MAX_RATE": "0",
            "HF_HUB_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False",
            "LOG_LEVEL": "INFO",
        }
        self.env.pop("CHROMA_URL", None)
        self.logs: list[Path] = []
        self.live: list[asyncio.subprocess.Process] = []

    async def run_bot(self) -> asyncio.subprocess.Process:
        """Start the bot and return once it long-polls getUpdates."""
        log = self.tmp_path / f"bot-{len(self.logs) + 1}.log"
        self.logs.append(log)
        calls_before = len(self.emulator.calls)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.cli",
                "run",
                env=self.env,
                cwd=self.tmp_path,  # no stray .env is picked up
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
            )
        finally:
            os.close(fd)
        self.live.append(process)
        await wait_until(
            lambda: any(m == "getUpdates" for _, m, _ in self.emulator.calls[calls_before:]),
            BOOT_TIMEOUT_S,
            "the bot to poll",
            process,
        )
        return process

    async def cleanup(self) -> None:
        for process in self.live:
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
                await process.wait()

    def dump(self) -> str:
        parts = []
        for log in self.logs:
            lines = log.read_text(errors="replace").splitlines()[-60:] if log.exists() else []
            parts.append(f"===== {log.name} (tail) =====\n" + "\n".join(lines))
        return "\n".join(parts)


@pytest.fixture
async def launcher(
    emulator: BotApiEmulator, settings: Settings, tmp_path: Path
) -> AsyncIterator[Launcher]:
    started = Launcher(emulator, settings, tmp_path)
    yield started
    await started.cleanup()


@contextmanager
def logs_on_failure(launcher: Launcher) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(launcher.dump())
        raise


async def wait_until(
    condition: Callable[[], bool],
    timeout: float,  # noqa: ASYNC109
    what: str,
    bot: asyncio.subprocess.Process,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if bot.returncode is not None:
            pytest.fail(f"the bot exited with {bot.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


def copies(emulator: BotApiEmulator) -> Counter[int]:
    """How many copies of the broadcast each chat holds."""
    return Counter(m.chat_id for m in emulator.sent() if m.text == TEXT)


def last_send_at(emulator: BotApiEmulator) -> float:
    return max(
        (stamp for stamp, method, _ in emulator.calls if method.lower() == "sendmessage"),
        default=0.0,
    )


def button(message: SentMessage, prefix: str) -> str:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    [data] = [
        b["callback_data"] for row in rows for b in row if b["callback_data"].startswith(prefix)
    ]
    return str(data)


async def kill_between_bursts(
    emulator: BotApiEmulator, bot: asyncio.subprocess.Process
) -> tuple[int, float]:
    """SIGKILL once >= 100 got it and no send came for QUIET_S (or after 10 s regardless).

    Returns (copies delivered at the kill, seconds since the last send at the kill).
    """
    await wait_until(lambda: sum(copies(emulator).values()) >= 100, 60, "100 copies", bot)
    give_up = time.monotonic() + 10
    while True:
        quiet_for = time.monotonic() - last_send_at(emulator)
        if quiet_for >= QUIET_S or time.monotonic() > give_up:
            break
        await asyncio.sleep(0.01)
    bot.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(bot.wait(), EXIT_TIMEOUT_S) == -signal.SIGKILL
    return sum(copies(emulator).values()), quiet_for


async def final_progress(settings: Settings) -> BroadcastProgress:
    engine = await with_engine(settings)
    try:
        [broadcast_id] = await engine.broadcasts.ids()
        progress = await engine.broadcasts.progress(broadcast_id)
        assert progress is not None
        return progress
    finally:
        await close_engine(engine)


async def test_sigkill_mid_broadcast_resumes_without_duplicates_or_gaps(
    emulator: BotApiEmulator, launcher: Launcher, settings: Settings
) -> None:
    engine = await with_engine(settings)
    try:
        users = list(range(FIRST_RECIPIENT, FIRST_RECIPIENT + RECIPIENTS))
        for start in range(0, RECIPIENTS, 25):
            chunk = users[start : start + 25]
            await asyncio.gather(*(engine.users.register(user_id=uid) for uid in chunk))
    finally:
        await close_engine(engine)  # SQLite + embedded Chroma: one process at a time
    everyone = {*users, ADMIN}

    with logs_on_failure(launcher):
        first = await launcher.run_bot()
        emulator.user_message(ADMIN, f"/broadcast {TEXT}")
        [preview] = await emulator.wait_for(chat_id=ADMIN, count=1, timeout=60)
        assert "this goes to <b>301</b> active users" in (preview.text or ""), preview.text
        send = button(preview, "bs:")
        emulator.press_button(ADMIN, preview.message_id, send)
        delivered, quiet_for = await kill_between_bursts(emulator, first)
        assert delivered < len(everyone), "the kill came too late to interrupt the broadcast"

        second = await launcher.run_bot()
        await wait_until(
            lambda: set(copies(emulator)) == everyone,
            FINISH_TIMEOUT_S,
            "every recipient to get the broadcast",
            second,
        )
        final = re.compile(
            r"✅ Broadcast #\d+ to 301 users\nsent 301 · failed 0 · blocked 0 · remaining 0"
        )
        await wait_until(
            lambda: final.fullmatch(preview.text or "") is not None,
            30,
            "the final progress edit",
            second,
        )
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), EXIT_TIMEOUT_S) == 0

    twice = sorted(uid for uid, n in copies(emulator).items() if n > 1)
    assert not twice, (
        f"{len(twice)} recipients got the broadcast twice: {twice[:20]}. The SIGKILL came "
        f"{quiet_for:.3f}s after the last send, with {delivered} copies out: it landed between "
        "Telegram accepting a send and its delivery row being marked sent (at-least-once)."
    )
    progress = await final_progress(settings)
    assert (progress.status, progress.sent, progress.pending) == ("done", 301, 0)
    assert (progress.failed, progress.blocked) == (0, 0)
