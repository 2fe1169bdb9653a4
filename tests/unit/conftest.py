"""Fixtures of the UnitOfWork unit tests: a real SQLite database and a fake vector store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.db import Database
from tests.unit.fake_vectors import FakeVectors, open_test_db


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_test_db(tmp_path)
    yield database
    await database.dispose()


@pytest.fixture
def store() -> FakeVectors:
    return FakeVectors()


@pytest.fixture
def tx_log(caplog: pytest.LogCaptureFixture) -> None:
    """Capture the one outcome line per transaction."""
    caplog.set_level(logging.INFO, logger="memorybot.tx")
