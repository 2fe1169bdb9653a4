"""Outage tests (issue #10): a store goes away while saves keep coming in.

The real Application runs in this process against the Bot API emulator, fed by the polling
intake, while a load of plain-text saves (and a few /recall questions) from several users
arrives at about ten a second. In the middle of it one store goes away:

* the Chroma server (`CHROMA_URL`) is SIGKILLed for about twenty seconds and then started
  again on the same port and data folder (SQLite and PostgreSQL);
* PostgreSQL is stopped for a few seconds and started again (PostgreSQL only; embedded
  Chroma).

Only outcomes are asserted, never times: no dead letter, every message saved exactly once
and answered with exactly one "Saved" (every /recall with one answer), no apology, each chat
told "saving is delayed" at most once for the outage (and somebody was told), the inbox
empty, and SQL and Chroma in agreement afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.inbox_worker import DELAYED
from bot.ledger import UpdateLedger
from botapi_emulator import BotApiEmulator, SentMessage
from engine.inbox import Inbox
from engine.settings import Settings
from tests.conftest import _free_port
from tests.e2e.conftest import BotUnderTest

pytestmark = pytest.mark.slow

USERS = (81_001, 81_002, 81_003, 81_004, 81_005, 81_006)
RATE_PER_S = 10.0
RECALL_EVERY = 13  # every 13th message is a /recall question instead of a save
BEFORE_S = 3.0  # load before the store goes away
CHROMA_DOWN_S = 20.0
PG_DOWN_S = 5.0
AFTER_S = 3.0  # load after it is back
DRAIN_TIMEOUT_S = 120.0
START_TIMEOUT_S = 60.0
APOLOGY = "Sorry, something went wrong"
NOUNS = ("passport", "umbrella", "charger", "invoice", "bicycle", "recipe", "ticket", "ring")
PLACES = ("blue drawer", "garage shelf", "red backpack", "office desk", "kitchen jar")


def pg_cluster() -> str:
    """The PostgreSQL version whose `main` cluster serves the tests (pg_ctlcluster's name)."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    return os.environ.get("MEMORYBOT_TEST_PG_CLUSTER") or (versions[-1] if versions else "")


def outage_settings(settings: Settings, **changes: object) -> Settings:
    """Fast probes and an early delay notice, and no send rate limit (outcomes, not pacing)."""
    return settings.model_copy(
        update={"breaker_probe_s": 0.5, "delay_notice_s": 2.0, "telegram_max_rate": 0, **changes}
    )


class ChromaServer:
    """A `chroma run` of this test only: killed and started again on the same port and path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        chroma = Path(sys.executable).parent / "chroma"
        argv = ["run", "--path", str(self.path / "data"), "--host", "127.0.0.1"]
        with (self.path / f"server-{self.starts}.log").open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(chroma), *argv, "--port", str(self.port), stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await asyncio.to_thread(self._answers):
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chroma server did not start; see {self.path}")
            await asyncio.sleep(0.1)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1):
                return True
        except OSError:
            return False

    async def kill(self) -> None:
        """SIGKILL: no goodbye to its clients, nothing flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await self.kill()


@pytest.fixture
async def chroma(tmp_path: Path) -> AsyncIterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server")
    server.path.mkdir()
    await server.start()
    yield server
    await server.stop()


@dataclass
class Load:
    """Messages from USERS, round robin, at RATE_PER_S: mostly saves, now and then a recall."""

    emulator: BotApiEmulator
    saves: dict[int, list[str]] = field(default_factory=lambda: {u: [] for u in USERS})
    recalls: dict[int, int] = field(default_factory=lambda: dict.fromkeys(USERS, 0))
    sent: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in itertools.count():
            if stop.is_set():
                return
            user = USERS[i % len(USERS)]
            if i % RECALL_EVERY == RECALL_EVERY - 1:
                self.emulator.user_message(user, f"/recall where is the {NOUNS[i % len(NOUNS)]}")
                self.recalls[user] += 1
            else:
                noun, place = NOUNS[i % len(NOUNS)], PLACES[(i // len(NOUNS)) % len(PLACES)]
                text = f"outage note {i}: the {noun} #{i} is in the {place} (user {user})"
                self.emulator.user_message(user, text)
                self.saves[user].append(text)
            self.sent += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), start + (i + 1) / RATE_PER_S - loop.time())

    @property
    def total_saves(self) -> int:
        return sum(len(texts) for texts in self.saves.values())

    def answered(self) -> bool:
        """Every save has its "Saved" and every recall some answer (not counting notices)."""
        for user in USERS:
            replies = [m for m in self.emulator.sent(user) if m.text != DELAYED]
            if len(replies) < len(self.saves[user]) + self.recalls[user]:
                return False
        return True


async def under_load(
    bot: BotUnderTest, outage: Callable[[], Awaitable[float]]
) -> tuple[Load, float]:
    """Run the load, with `outage` (returns how long the store was away) in the middle;
    then wait until every message is answered and the inbox is empty."""
    load = Load(bot.emulator)
    stop = asyncio.Event()
    sender = asyncio.create_task(load.run(stop))
    try:
        await asyncio.sleep(BEFORE_S)
        down_s = await outage()
        await asyncio.sleep(AFTER_S)
    finally:
        stop.set()
        await sender
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT_S
    while not load.answered():
        if loop.time() > deadline:
            raise TimeoutError("messages still unanswered after the outage")
        await asyncio.sleep(0.1)
    await bot.settled(within_s=DRAIN_TIMEOUT_S)
    return load, down_s


@dataclass(frozen=True)
class Outcome:
    notices: int  # "saving is delayed" messages sent
    orphans: int  # vectors left without a row by a write whose answer was lost


def deferred_ids(logs: pytest.LogCaptureFixture) -> set[str]:
    """Ids of saves rolled back whose vector write may have landed (`compensation=deferred`)."""
    found: set[str] = set()
    for record in logs.records:
        message = record.getMessage()
        if record.name == "memorybot.tx" and "compensation=deferred" in message:
            match = re.search(r"\bids=(\S+)", message)
            found.update(match.group(1).split(",") if match else ())
    return found


async def audit(bot: BotUnderTest, load: Load, logs: pytest.LogCaptureFixture) -> Outcome:
    """The outcome assertions; returns what the summary line reports."""
    engine = bot.engine
    notices = 0
    for user in USERS:
        sent: list[SentMessage] = bot.emulator.sent(user)
        texts = [m.text or "" for m in sent]
        assert not [t for t in texts if APOLOGY in t], f"user {user} got an apology"
        told = texts.count(DELAYED)
        assert told <= 1, f"user {user} was told {told} times that saving is delayed"
        notices += told
        saved = [t for t in texts if "Saved" in t]
        assert len(saved) == len(load.saves[user]), f"user {user}: one Saved per save"
        assert not [t for t in texts if "Already saved" in t], f"user {user}: saved twice"
        others = len(texts) - told - len(saved)
        assert others == load.recalls[user], f"user {user}: one answer per recall"
        page = await engine.reads.page(space_id=user, limit=10 * load.total_saves)
        stored = [m.text for m in page.items]
        assert sorted(stored) == sorted(load.saves[user]), f"user {user}: stored != sent"
        replies = " ".join(saved)
        untold = [m.short_id for m in page.items if m.short_id not in replies]
        assert not untold, f"user {user} was never told about {untold}"
    assert await UpdateLedger(engine.stores).dead_letters() == []
    assert await Inbox(engine.stores).depth() == (0, None)
    report = await engine.index.check()
    # A save whose vector write got no answer is rolled back; if the write landed all the
    # same, its vector has no row (an orphan, left to the sweep: `compensation=deferred`).
    # Any other drift, or an orphan the sweep cannot remove, is a bug.
    assert not report.missing, report.as_dict()
    assert not report.stale, report.as_dict()
    orphans = len(report.orphans)
    unexplained = {v.id for v in report.orphans} - deferred_ids(logs)
    assert not unexplained, f"vectors without a row from no rolled-back save: {unexplained}"
    if orphans:
        await engine.index.sweep(grace_s=0)
        report = await engine.index.check()
    assert not report.drift, report.as_dict()
    assert report.sql_count == report.vector_count == load.total_saves
    assert notices >= 1, "nobody was told that saving is delayed"
    return Outcome(notices, orphans)


def breaker_opened(caplog: pytest.LogCaptureFixture, store: str) -> int:
    return sum(
        f"store={store} state=open" in r.getMessage()
        for r in caplog.records
        if r.name == "memorybot.breaker"
    )


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="memorybot")
    return caplog


async def test_chroma_server_killed_under_load(
    emulator: BotApiEmulator,
    settings: Settings,
    chroma: ChromaServer,
    logs: pytest.LogCaptureFixture,
) -> None:
    bot = BotUnderTest(outage_settings(settings, chroma_url=chroma.url), emulator)
    await bot.start()
    try:

        async def outage() -> float:
            await chroma.kill()
            killed = time.monotonic()
            await asyncio.sleep(CHROMA_DOWN_S)
            await chroma.start()
            return time.monotonic() - killed

        load, down_s = await under_load(bot, outage)
        outcome = await audit(bot, load, logs)
        assert breaker_opened(logs, "vectors") >= 1
    finally:
        await bot.stop()
    db = settings.database_url.split("+", 1)[0]
    print(
        f"\nchroma outage [{db}]: messages={load.sent} saves={load.total_saves} "
        f"notices={outcome.notices} dead_letters=0 orphans_swept={outcome.orphans} "
        f"outage_s={down_s:.1f}"
    )


async def pg_ctl(action: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster", "--skip-systemctl-redirect", pg_cluster(), "main", action
    )
    assert await process.wait() == 0, f"pg_ctlcluster {action} failed"


async def pg_ready() -> bool:
    process = await asyncio.create_subprocess_exec(
        "pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"
    )
    return await process.wait() == 0


async def wait_pg_ready() -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not await pg_ready():
        if time.monotonic() > deadline:
            raise RuntimeError("PostgreSQL did not come back")
        await asyncio.sleep(0.2)


# It restarts the PostgreSQL server every test shares: scripts/test.sh runs it alone, after
# the parallel run (a restart once cut the connections of another worker's test).
@pytest.mark.exclusive
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_postgres_restarted_under_load(
    emulator: BotApiEmulator, settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    bot = BotUnderTest(outage_settings(settings), emulator)
    await bot.start()
    try:

        async def outage() -> float:
            await pg_ctl("stop")
            stopped = time.monotonic()
            await asyncio.sleep(PG_DOWN_S)
            await pg_ctl("start")
            await wait_pg_ready()
            return time.monotonic() - stopped

        load, down_s = await under_load(bot, outage)
        outcome = await audit(bot, load, logs)
        assert breaker_opened(logs, "sql") >= 1
    finally:
        try:
            if not await pg_ready():
                await pg_ctl("start")
            await wait_pg_ready()
        finally:
            await bot.stop()
    print(
        f"\npostgres restart: messages={load.sent} saves={load.total_saves} "
        f"notices={outcome.notices} dead_letters=0 orphans_swept={outcome.orphans} "
        f"outage_s={down_s:.1f}"
    )
