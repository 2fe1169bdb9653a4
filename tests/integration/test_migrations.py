"""Migrations run on both databases and produce exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from engine.app import MemoryEngine
from storage import migrate
from storage.models import Base


async def test_database_is_at_head_and_matches_the_models(engine: MemoryEngine) -> None:
    assert await migrate.current_revision(engine.db.write_engine) == migrate.head_revision()

    def diff(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with engine.db.write_engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_upgrade_twice_is_harmless(engine: MemoryEngine) -> None:
    await migrate.upgrade(engine.db.write_engine)
    assert await migrate.current_revision(engine.db.write_engine) == migrate.head_revision()
