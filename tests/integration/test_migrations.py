"""Migrations run on both databases and produce exactly the schema the models describe."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from engine.app import MemoryEngine
from storage import migrate
from storage.db import open_database
from storage.models import Base
from tests.conftest import _pg

NOW = datetime(2026, 11, 1, tzinfo=UTC).replace(tzinfo=None)


async def test_database_is_at_head_and_matches_the_models(engine: MemoryEngine) -> None:
    assert await migrate.current_revision(engine.stores.db.write_engine) == migrate.head_revision()

    def diff(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with engine.stores.db.write_engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_upgrade_twice_is_harmless(engine: MemoryEngine) -> None:
    await migrate.upgrade(engine.stores.db.write_engine)
    assert await migrate.current_revision(engine.stores.db.write_engine) == migrate.head_revision()


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database nothing was migrated into yet, on each dialect."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = f"memorybot_migration_{uuid.uuid4().hex[:8]}"
    await _pg(f'CREATE DATABASE "{name}"')
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_0004_drops_importance_and_keeps_every_memory(empty_database: str) -> None:
    db = open_database(empty_database)
    try:
        await migrate.upgrade(db.write_engine, "0003")
        async with db.write_engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, role, is_active, ops_today,"
                    " created_at, last_seen_at) VALUES"
                    " (1, 'user', true, 0, :t, :t)"
                ),
                {"t": NOW},
            )
            for n in range(3):
                await connection.execute(
                    text(
                        "INSERT INTO memories (id, user_id, text, kind, tags, importance,"
                        " created_at, updated_at) VALUES (:id, 1, :text, 'note', '[]', 5, :t, :t)"
                    ),
                    {"id": uuid.uuid4().hex, "text": f"old memory {n}", "t": NOW},
                )
        await migrate.upgrade(db.write_engine)
        assert await migrate.current_revision(db.write_engine) == migrate.head_revision()

        def columns(connection: Connection) -> set[str]:
            return {c["name"] for c in inspect(connection).get_columns("memories")}

        async with db.write_engine.connect() as connection:
            assert "importance" not in await connection.run_sync(columns)
            texts = await connection.scalars(text("SELECT text FROM memories ORDER BY text"))
            assert list(texts) == ["old memory 0", "old memory 1", "old memory 2"]
    finally:
        await db.dispose()
