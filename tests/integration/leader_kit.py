"""What the leadership and failover tests share: engines on one database, recipients, a
sender that records every message, and a way to break a leader's lock connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from chromadb.api.shared_system_client import SharedSystemClient
from sqlalchemy.engine import make_url

from engine.app import MemoryEngine, open_engine
from engine.settings import Settings
from jobs.delivery import BroadcastWorker
from storage.embedder import Embedder
from storage.locks import application_name
from tests.conftest import PG_ADMIN, TABLES, _pg

ADMIN = 9_001
FIRST_RECIPIENT = 500_001
TEXT = "memorybot will restart at 03:00 UTC for about five minutes."
OpenEngine = Callable[[], Awaitable[MemoryEngine]]


def no_model(texts: list[str]) -> np.ndarray:
    raise AssertionError("these engines register users and send broadcasts; they never embed")


async def pg_settings_for(pg_database: str, tmp_path: Path, model_cache: Path) -> Settings:
    """The real PostgreSQL (emptied), with a quick leader check and short claim leases."""
    with contextlib.suppress(asyncpg.UndefinedTableError):
        await _pg(f"TRUNCATE {TABLES} CASCADE", pg_database)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_database}",
        chroma_path=tmp_path / "chroma",
        chroma_url=None,
        chroma_shards=2,
        model_cache_path=model_cache,
        leader_check_s=0.5,
        broadcast_lease_s=6.0,
    )


@contextlib.asynccontextmanager
async def engines_on(settings: Settings, tmp_path: Path) -> AsyncIterator[OpenEngine]:
    """Open independent engines on one database, each as another process would (its own
    pools, its own Chroma directory); all closed on exit."""
    opened: list[MemoryEngine] = []

    async def open_one() -> MemoryEngine:
        own = settings.model_copy(update={"chroma_path": tmp_path / f"chroma-{len(opened)}"})
        SharedSystemClient.clear_system_cache()
        engine = await open_engine(own, embedder=Embedder(no_model))
        opened.append(engine)
        return engine

    try:
        yield open_one
    finally:
        for engine in opened:
            await engine.aclose()
        SharedSystemClient.clear_system_cache()


async def broadcast_to(engine: MemoryEngine, recipients: int) -> tuple[int, set[int]]:
    """Register `recipients` users (and the admin) and create a broadcast to all of them."""
    users = list(range(FIRST_RECIPIENT, FIRST_RECIPIENT + recipients))
    for start in range(0, recipients, 50):
        chunk = users[start : start + 50]
        await asyncio.gather(*(engine.users.register(user_id=uid) for uid in chunk))
    await engine.users.register(user_id=ADMIN)
    broadcast_id = await engine.broadcasts.create(author_id=ADMIN, text=TEXT)
    return broadcast_id, {*users, ADMIN}


class Inbox:
    """Every message the fake Telegram accepted: (worker, chat) in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, int]] = []

    def sender(
        self, name: str, *, pause_s: float = 0.002
    ) -> Callable[[int, str], Awaitable[None]]:
        async def send(chat_id: int, text: str) -> None:
            assert text == TEXT
            await asyncio.sleep(pause_s)  # a round trip: other lanes and workers interleave
            self.messages.append((name, chat_id))

        return send

    def copies(self) -> Counter[int]:
        return Counter(chat for _, chat in self.messages)

    def by(self, name: str) -> int:
        return sum(1 for worker, _ in self.messages if worker == name)


def worker(engine: MemoryEngine, inbox: Inbox, name: str, *, rate: float) -> BroadcastWorker:
    return BroadcastWorker(
        leadership=engine.stores.leadership,
        broadcasts=engine.broadcasts,
        send=inbox.sender(name),
        rate=rate,
        owner=name,
    )


async def terminate_lock_connection(settings: Settings, job: str) -> list[int]:
    """From another connection, end the backend holding `job`'s lock (found by its
    application_name and its granted advisory lock: a rival asking for the lock at that
    moment has a connection of the same name); returns the pids ended."""
    database = make_url(settings.database_url).database
    connection = await asyncpg.connect(PG_ADMIN.rsplit("/", 1)[0] + f"/{database}")
    try:
        rows = await connection.fetch(
            "SELECT a.pid, pg_terminate_backend(a.pid) AS ended FROM pg_stat_activity a"
            " WHERE a.application_name = $1 AND a.datname = $2 AND EXISTS ("
            "  SELECT 1 FROM pg_locks l"
            "  WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)",
            application_name(job),
            database,
        )
    finally:
        await connection.close()
    return [int(row["pid"]) for row in rows if row["ended"]]


async def eventually(condition: Callable[[], bool], what: str, *, within: float = 30.0) -> None:
    """Wait for `condition` (a failure bound, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.01)
