"""Fixtures of the unit tier: a real database (SQLite in tmp, or the parametrized one) and fakes.

`db` and `store` serve the unit-of-work tests (SQLite only). `fake_engine` is the whole engine
on the in-memory vector index and the bag-of-words encoder, once on SQLite and once on the real
PostgreSQL (through the shared `database_url`/`settings` fixtures): no model, no Chroma.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from engine import inbox as inbox_module
from engine.app import MemoryEngine, open_engine
from engine.faults import Faults
from engine.settings import Settings
from engine.stores import Stores
from storage.db import Database
from storage.embedder import Embedder
from tests.conftest import fake_encode
from tests.fakes.vector_index import InMemoryVectorIndex
from tests.unit.inbox_kit import Clock
from tests.unit.uow_kit import open_test_db

Reopen = Callable[[], Awaitable[MemoryEngine]]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_test_db(tmp_path)
    yield database
    await database.dispose()


@pytest.fixture
def store() -> InMemoryVectorIndex:
    return InMemoryVectorIndex()


@pytest.fixture
def tx_log(caplog: pytest.LogCaptureFixture) -> None:
    """Capture the one outcome line per transaction."""
    caplog.set_level(logging.DEBUG, logger="memorybot.tx")


@pytest.fixture
def fake_index(settings: Settings) -> InMemoryVectorIndex:
    """The vector index of `fake_engine` (and of every engine `reopen_fake` opens)."""
    return InMemoryVectorIndex(shards=settings.chroma_shards)


@pytest.fixture
async def fake_engine(
    settings: Settings, fake_index: InMemoryVectorIndex, faults: Faults
) -> AsyncIterator[MemoryEngine]:
    """The whole engine on the parametrized database, `fake_index` and the fake encoder."""
    opened = await open_engine(
        settings, embedder=Embedder(fake_encode), vectors=fake_index, faults=faults
    )
    yield opened
    await opened.aclose()


@pytest.fixture
async def reopen_fake(
    settings: Settings, fake_index: InMemoryVectorIndex
) -> AsyncIterator[Reopen]:
    """Open a second engine on the same database and the same fake index (fresh sessions)."""
    opened: list[MemoryEngine] = []

    async def _open() -> MemoryEngine:
        fresh = await open_engine(
            settings, embedder=Embedder(fake_encode), vectors=fake_index, upgrade=False
        )
        opened.append(fresh)
        return fresh

    yield _open
    for item in opened:
        await item.aclose()


@pytest.fixture
async def alice(fake_engine: MemoryEngine) -> int:
    """Registers alice (101) and bob (202); returns alice's id."""
    await fake_engine.users.register(user_id=101, username="alice")
    await fake_engine.users.register(user_id=202, username="bob")
    return 101


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(inbox_module, "utcnow", fake)
    return fake


@pytest.fixture
def stores(fake_engine: MemoryEngine) -> Stores:
    return fake_engine.stores
