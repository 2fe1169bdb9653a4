"""Two real bots on PostgreSQL; the broadcast leader's lock connection is broken mid-broadcast.

Two `python -m bot.cli run` processes share the real PostgreSQL and one `chroma run` server,
and poll the Bot API emulator. The admin sends /broadcast to 300 recipients and presses Send.
Once about a third got it, the backend holding the broadcast lock (found in pg_stat_activity
by its application_name) is ended from outside. The leader stops between sends; a bot takes
leadership again and finishes. Every recipient holds exactly one copy.
"""

from __future__ import annotations

import asyncio
import re
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botapi_emulator import BotApiEmulator, SentMessage
from engine.settings import Settings
from tests.e2e.test_broadcast_crash import (
    ADMIN,
    EXIT_TIMEOUT_S,
    FINISH_TIMEOUT_S,
    FIRST_RECIPIENT,
    RECIPIENTS,
    TEXT,
    Launcher,
    button,
    close_engine,
    copies,
    final_progress,
    logs_on_failure,
    wait_until,
    with_engine,
)
from tests.integration.leader_kit import pg_settings_for, terminate_lock_connection

pytestmark = pytest.mark.slow


@pytest.fixture
async def pg_settings(
    pg_database: str, tmp_path: Path, model_cache: Path, chroma_server: str
) -> Settings:
    settings = await pg_settings_for(pg_database, tmp_path, model_cache)
    collection = f"failover_{uuid.uuid4().hex[:8]}"
    return settings.model_copy(
        update={"chroma_url": chroma_server, "chroma_collection": collection}
    )


@pytest.fixture
async def launcher(
    emulator: BotApiEmulator, pg_settings: Settings, tmp_path: Path
) -> AsyncIterator[Launcher]:
    started = Launcher(emulator, pg_settings, tmp_path)
    started.env |= {
        "CHROMA_URL": str(pg_settings.chroma_url),
        "CHROMA_COLLECTION": pg_settings.chroma_collection,
        "LEADER_CHECK_S": "0.5",
        "BROADCAST_LEASE_S": "6",
    }
    yield started
    await started.cleanup()


async def polling(launcher: Launcher, process: asyncio.subprocess.Process) -> None:
    """Wait for the newest bot's own log to say it polls (the other bot polls already)."""
    log = launcher.logs[-1]
    await wait_until(
        lambda: log.exists() and "polling started" in log.read_text(errors="replace"),
        120,
        "the second bot to poll",
        process,
    )


async def break_the_lock_at(
    emulator: BotApiEmulator, settings: Settings, *, copies_sent: int
) -> tuple[list[int], int]:
    """End the broadcast leader's lock connection once `copies_sent` copies are recorded;
    returns the pids ended and the copies sent by then. The emulator itself says when (a
    test that polled the count could, on a busy machine, look too late: the whole broadcast
    was once out before it looked)."""
    reached = asyncio.get_running_loop().create_future()
    record = emulator.record_sent

    def recording(message: SentMessage) -> None:
        record(message)
        done = reached.done() or message.text != TEXT
        if not done and sum(copies(emulator).values()) >= copies_sent:
            reached.set_result(None)

    emulator.record_sent = recording  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(reached, 60)
        ended = await terminate_lock_connection(settings, "broadcast")
    finally:
        emulator.record_sent = record  # type: ignore[method-assign]
    return ended, sum(copies(emulator).values())


async def test_breaking_the_leaders_lock_connection_mid_broadcast(
    emulator: BotApiEmulator, launcher: Launcher, pg_settings: Settings
) -> None:
    engine = await with_engine(pg_settings)
    try:
        users = list(range(FIRST_RECIPIENT, FIRST_RECIPIENT + RECIPIENTS))
        for start in range(0, RECIPIENTS, 25):
            chunk = users[start : start + 25]
            await asyncio.gather(*(engine.users.register(user_id=uid) for uid in chunk))
    finally:
        await close_engine(engine)
    everyone = {*users, ADMIN}

    with logs_on_failure(launcher):
        first = await launcher.run_bot()
        second = await launcher.run_bot()
        await polling(launcher, second)
        emulator.user_message(ADMIN, f"/broadcast {TEXT}")
        [preview] = await emulator.wait_for(chat_id=ADMIN, count=1, timeout=60)
        assert "this goes to <b>301</b> active users" in (preview.text or ""), preview.text
        emulator.press_button(ADMIN, preview.message_id, button(preview, "bs:"))
        ended, at_break = await break_the_lock_at(emulator, pg_settings, copies_sent=100)
        assert len(ended) == 1, f"one backend holds the broadcast lock, not {ended}"
        assert at_break < len(everyone), "the break came too late to interrupt the broadcast"
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
        for bot in (first, second):
            bot.send_signal(signal.SIGTERM)
        for bot in (first, second):
            assert await asyncio.wait_for(bot.wait(), EXIT_TIMEOUT_S) == 0
        logs = [log.read_text(errors="replace") for log in launcher.logs]
        assert any("leadership lost" in text for text in logs), "the leader saw its loss"

    twice = sorted(uid for uid, n in copies(emulator).items() if n > 1)
    assert not twice, f"{len(twice)} recipients got the broadcast twice: {twice[:20]}"
    progress = await final_progress(pg_settings)
    assert (progress.status, progress.sent, progress.pending) == ("done", 301, 0)
    assert (progress.failed, progress.blocked) == (0, 0)
