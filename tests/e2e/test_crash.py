"""Crash tests: the real `memorybot run` process killed mid-burst, restarted, and audited.

The Bot API emulator runs in the test process; the bot runs as a real subprocess
(`python -m bot.cli run`) pointed at it. A burst of plain-text messages from several users is
queued, the process is killed with SIGKILL (or stopped with SIGTERM) while it is answering, and a
second process takes over. Afterwards, with no bot running, every message must be saved exactly
once, every user must have been told the id of each of their memories, and SQL and Chroma must
agree.

About drift after SIGKILL: a save writes its vectors to Chroma and then commits SQL. A kill that
lands between the two leaves vectors without rows ("orphans"): never shown to anyone (recall
drops vectors without a live row), and deleted by the sweep once older than `SWEEP_GRACE_S`
(younger drift may belong to a transaction still in flight, so the sweep leaves it alone). So
right after a SIGKILL restart the only drift allowed is orphans; `memorybot repair` (what
`memorybot check` tells the operator to run) must then leave SQL and Chroma identical.
`test_sigkill_between_vector_write_and_commit` makes that worst case deterministic by killing the
process from inside, right after its first vector write. A SIGTERM drains instead: no drift at
all, no repair.

Only one process opens the SQLite file and the embedded Chroma folder at a time: every bot is
waited for after its signal, the CLI commands run one after another, and the test's own engine
is opened last, once everything else has exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.ledger import UpdateLedger
from botapi_emulator import BotApiEmulator
from engine.app import open_engine
from engine.inbox import Inbox
from engine.settings import Settings
from storage.embedder import Embedder
from tests.e2e.conftest import inbox_pending

pytestmark = pytest.mark.slow

USERS = (71_001, 71_002, 71_003, 71_004, 71_005, 71_006)
BURST = 120
BOOT_TIMEOUT_S = 90.0
DRAIN_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 90.0
REPLY_DELAY_S = 0.03  # each sendMessage takes this long: the answers trickle out
NOUNS = ("passport", "umbrella", "charger", "invoice", "bicycle", "recipe", "ticket", "ring")
PLACES = ("blue drawer", "garage shelf", "red backpack", "office desk", "kitchen jar")
BOT_RUN = ("-m", "bot.cli", "run")
# `memorybot run`, except that the process SIGKILLs itself as soon as its first vector write has
# landed in Chroma: the rows of that batch are flushed but not committed.
CRASH_AFTER_FIRST_VECTOR_WRITE = """
import os, signal, sys
from storage.vectors import ChromaIndex

_upsert = ChromaIndex.upsert

async def upsert(self, records, **kwargs):
    await _upsert(self, records, **kwargs)
    if records:
        os.kill(os.getpid(), signal.SIGKILL)

ChromaIndex.upsert = upsert
from bot.cli import main
sys.exit(main(["run"]))
"""


def burst_texts(size: int = BURST) -> dict[int, list[str]]:
    """`size` distinct texts, spread round-robin over USERS."""
    texts: dict[int, list[str]] = {user: [] for user in USERS}
    for i in range(size):
        user = USERS[i % len(USERS)]
        noun, place = NOUNS[i % len(NOUNS)], PLACES[(i // len(NOUNS)) % len(PLACES)]
        texts[user].append(f"crash note {i}: the {noun} #{i} is in the {place} (user {user})")
    return texts


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class BotProcesses:
    """Runs `memorybot` subprocesses against the emulator, one log file each."""

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
            "TELEGRAM_MAX_RATE": "0",
            "HF_HUB_OFFLINE": "1",
            "ANONYMIZED_TELEMETRY": "False",
            "LOG_LEVEL": "INFO",
        }
        self.env.pop("CHROMA_URL", None)
        self.logs: list[Path] = []
        self.live: list[asyncio.subprocess.Process] = []

    async def spawn(
        self, argv: Sequence[str], name: str, *, capture: bool = False
    ) -> tuple[asyncio.subprocess.Process, Path]:
        """Start `python *argv`; stderr (and stdout unless `capture`) go to a log file."""
        log = self.tmp_path / f"{len(self.logs) + 1:02d}-{name}.log"
        self.logs.append(log)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *argv,
                env=self.env,
                cwd=self.tmp_path,  # no stray .env is picked up
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if capture else fd,
                stderr=fd,
            )
        finally:
            os.close(fd)
        self.live.append(process)
        return process, log

    async def run_bot(self, argv: Sequence[str] = BOT_RUN) -> asyncio.subprocess.Process:
        """Start the bot and return once it long-polls getUpdates (the model is loaded)."""
        calls_before = len(self.emulator.calls)
        process, log = await self.spawn(argv, "run")
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while not any(m == "getUpdates" for _, m, _ in self.emulator.calls[calls_before:]):
            if process.returncode is not None:
                pytest.fail(f"the bot exited with {process.returncode} while starting; see {log}")
            if time.monotonic() > deadline:
                pytest.fail(f"the bot did not poll within {BOOT_TIMEOUT_S:.0f}s; see {log}")
            await asyncio.sleep(0.1)
        return process

    @staticmethod
    async def kill(process: asyncio.subprocess.Process) -> None:
        """SIGKILL, and wait until the process is really gone (its files are free)."""
        process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), EXIT_TIMEOUT_S) == -signal.SIGKILL

    @staticmethod
    async def terminate(process: asyncio.subprocess.Process) -> int:
        """SIGTERM and the exit code (the graceful drain must finish within EXIT_TIMEOUT_S)."""
        process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), EXIT_TIMEOUT_S)
        except TimeoutError:
            pytest.fail(f"the bot did not exit within {EXIT_TIMEOUT_S:.0f}s of SIGTERM")

    async def cli(self, *args: str) -> tuple[int, str]:
        """Run `memorybot *args` to completion: (exit code, its stdout)."""
        process, _ = await self.spawn(["-m", "bot.cli", *args], "-".join(args), capture=True)
        stdout, _ = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
        assert process.returncode is not None
        return process.returncode, stdout.decode(errors="replace")

    async def cleanup(self) -> None:
        for process in self.live:
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
                await process.wait()

    def dump(self) -> str:
        return "\n".join(f"===== {log.name} (tail) =====\n{_tail(log, 60)}" for log in self.logs)


@pytest.fixture
async def processes(
    emulator: BotApiEmulator, settings: Settings, tmp_path: Path
) -> AsyncIterator[BotProcesses]:
    launcher = BotProcesses(emulator, settings, tmp_path)
    yield launcher
    await launcher.cleanup()


@contextlib.contextmanager
def logs_on_failure(launcher: BotProcesses) -> Iterator[None]:
    """Print the tail of every subprocess log when the test fails."""
    try:
        yield
    except BaseException:
        print(launcher.dump())
        raise


def send_burst(emulator: BotApiEmulator, size: int = BURST) -> dict[int, list[str]]:
    """Queue `size` messages, interleaving the users as real traffic would."""
    texts = burst_texts(size)
    for i in range(size // len(USERS)):
        for user in USERS:
            emulator.user_message(user, texts[user][i])
    return texts


def saved_replies(emulator: BotApiEmulator) -> int:
    return sum("Saved" in (m.text or "") for m in emulator.sent())


async def wait_until(
    condition: Callable[[], bool], limit_s: float, what: str, bot: asyncio.subprocess.Process
) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if bot.returncode is not None:
            pytest.fail(f"the bot exited with {bot.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


async def drain(
    emulator: BotApiEmulator, bot: asyncio.subprocess.Process, queued: int, settings: Settings
) -> None:
    """Every queued save confirmed (the offset is past the last update id), answered, and
    finished in the inbox (a save redone after a kill is answered again: the count of
    replies alone is not enough)."""
    await wait_until(
        lambda: (
            emulator.pending_updates() == 0
            and emulator.confirmed_offset > queued
            and saved_replies(emulator) >= queued
        ),
        DRAIN_TIMEOUT_S,
        "the bot to confirm and answer every update",
        bot,
    )
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while await inbox_pending(settings):
        if bot.returncode is not None or time.monotonic() > deadline:
            pytest.fail("updates stayed pending in the inbox")
        await asyncio.sleep(0.1)


async def check_json(processes: BotProcesses) -> tuple[int, dict[str, Any]]:
    code, output = await processes.cli("check", "--json")
    return code, json.loads(output)


def assert_only_orphans(report: dict[str, Any]) -> None:
    """Crash residue is vectors without rows; a row without a vector would be a lost index."""
    assert report["rows_without_vector"] == [], report
    assert report["stale_vectors"] == [], report
    assert report["sql_count"] + len(report["vectors_without_row"]) == report["vector_count"]


async def audit(
    settings: Settings,
    real_encode: Callable[[list[str]], np.ndarray],
    emulator: BotApiEmulator,
    texts: dict[int, list[str]],
) -> None:
    """With nothing else running: each user holds exactly the texts sent; SQL and Chroma agree."""
    engine = await open_engine(settings, embedder=Embedder(real_encode))
    try:
        total = sum(len(sent) for sent in texts.values())
        for user, sent in texts.items():
            page = await engine.reads.page(space_id=user, limit=10 * total)
            stored = [m.text for m in page.items]
            assert sorted(stored) == sorted(sent), f"user {user}: stored != sent"
            assert page.total == len(sent)
            replies = " ".join(m.text or "" for m in emulator.sent(user))
            untold = [m.short_id for m in page.items if m.short_id not in replies]
            assert not untold, f"user {user} was never told about {untold}"
        report = await engine.index.check()
        assert not report.drift, report.as_dict()
        assert report.sql_count == report.vector_count == total
        assert await UpdateLedger(engine.stores).dead_letters() == []
        assert await Inbox(engine.stores).depth() == (0, None)
    finally:
        await engine.aclose()


async def test_sigkill_mid_burst_then_restart_loses_and_duplicates_nothing(
    emulator: BotApiEmulator,
    processes: BotProcesses,
    settings: Settings,
    real_encode: Callable[[list[str]], np.ndarray],
) -> None:
    with logs_on_failure(processes):
        first = await processes.run_bot()
        emulator.slow("sendMessage", delay=REPLY_DELAY_S, times=10 * BURST)
        texts = send_burst(emulator)
        await wait_until(lambda: saved_replies(emulator) >= 20, 60, "20 Saved replies", first)
        await processes.kill(first)
        assert saved_replies(emulator) < BURST, "the kill came too late to interrupt the burst"
        unanswered = BURST - saved_replies(emulator)
        assert emulator.pending_updates() + await inbox_pending(settings) >= unanswered

        second = await processes.run_bot()
        await drain(emulator, second, BURST, settings)
        assert await processes.terminate(second) == 0

        code, report = await check_json(processes)
        assert_only_orphans(report)
        assert code == (1 if report["drift"] else 0)
        if report["drift"]:  # the kill landed between a vector write and its commit
            print(f"orphans left by the kill: {len(report['vectors_without_row'])}")
            assert (await processes.cli("repair"))[0] == 0
        code, output = await processes.cli("check")
        assert code == 0, output
        assert "ok: SQL and Chroma agree" in output
        await audit(settings, real_encode, emulator, texts)


async def test_sigkill_between_vector_write_and_commit(
    emulator: BotApiEmulator,
    processes: BotProcesses,
    settings: Settings,
    real_encode: Callable[[list[str]], np.ndarray],
) -> None:
    """The worst moment for a kill, made deterministic: vectors stored, rows not committed."""
    size = 30
    with logs_on_failure(processes):
        first = await processes.run_bot(["-c", CRASH_AFTER_FIRST_VECTOR_WRITE])
        texts = send_burst(emulator, size)
        try:
            code = await asyncio.wait_for(first.wait(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            pytest.fail("the bot never killed itself: is ChromaIndex.upsert still the write path?")
        assert code == -signal.SIGKILL
        assert saved_replies(emulator) == 0
        # What the dead bot confirmed it had stored: it waits in the inbox, unfinished.
        assert emulator.pending_updates() + await inbox_pending(settings) == size

        second = await processes.run_bot()
        await drain(emulator, second, size, settings)
        assert await processes.terminate(second) == 0
        assert saved_replies(emulator) == size

        code, report = await check_json(processes)
        assert_only_orphans(report)
        assert report["vectors_without_row"], "the killed batch left its vectors behind"
        assert code == 1, "check must report the orphans"
        code, output = await processes.cli("repair")
        assert code == 0, output
        code, output = await processes.cli("check")
        assert code == 0, output
        await audit(settings, real_encode, emulator, texts)


async def test_sigterm_mid_burst_drains_then_restart_finishes(
    emulator: BotApiEmulator,
    processes: BotProcesses,
    settings: Settings,
    real_encode: Callable[[list[str]], np.ndarray],
) -> None:
    with logs_on_failure(processes):
        first = await processes.run_bot()
        emulator.slow("sendMessage", delay=REPLY_DELAY_S, times=10 * BURST)
        texts = send_burst(emulator)
        await wait_until(lambda: saved_replies(emulator) >= 20, 60, "20 Saved replies", first)
        assert await processes.terminate(first) == 0
        # The updates in hand were finished; what was stored but not begun waits in the inbox.
        handled = saved_replies(emulator)
        assert handled >= 20
        assert emulator.confirmed_offset - 1 >= handled
        assert emulator.pending_updates() + await inbox_pending(settings) == BURST - handled

        second = await processes.run_bot()
        await drain(emulator, second, BURST, settings)
        assert await processes.terminate(second) == 0
        assert saved_replies(emulator) == BURST, "each message answered once, none twice"

        code, output = await processes.cli("check")
        assert code == 0, output  # a graceful stop leaves no drift, not even orphans
        await audit(settings, real_encode, emulator, texts)
