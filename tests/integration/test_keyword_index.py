"""The keyword index (migration 0008) on both databases: backfill, Unicode, every write path,
safe quoting, and `check` / `repair` noticing and fixing a broken index."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from engine.app import MemoryEngine, open_engine
from engine.settings import Settings
from storage import keyword_ddl, keyword_index, migrate
from storage.db import Database, open_database
from storage.embedder import Embedder
from storage.models import MemoryRow
from tests.conftest import _pg, fake_encode
from tests.fakes.vector_index import InMemoryVectorIndex

NOW = datetime(2026, 11, 1, tzinfo=UTC)
OLD_NOTES = [
    "Паспорт лежит в синей папке",
    "Le café près de la gare ferme à 18h",
    "Der Schlüssel für die Garage hängt neben der Tür",
    "La canción de la boda era de Juanes",
    "called the phone company about the bill",
    "recall the locker code 4471-QX",
]


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database nothing was migrated into yet, on each dialect."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = f"memorybot_keyword_{uuid.uuid4().hex[:8]}"
    await _pg(f'CREATE DATABASE "{name}"')
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _insert_old_rows(db: Database) -> None:
    async with db.write_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO users (id, role, is_active, ops_today, created_at, last_seen_at)"
                " VALUES (1, 'user', true, 0, :t, :t)"
            ),
            {"t": NOW.replace(tzinfo=None)},
        )
        for body in OLD_NOTES:
            await connection.execute(
                text(
                    "INSERT INTO memories (id, space_id, author_id, text, kind, tags,"
                    " created_at, updated_at) VALUES (:id, 1, 1, :text, 'note', '[]', :t, :t)"
                ),
                {"id": uuid.uuid4().hex, "text": body, "t": NOW.replace(tzinfo=None)},
            )


async def _downgrade(db: Database, revision: str) -> None:
    def run(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with db.write_engine.begin() as connection:
        await connection.run_sync(run)


async def _find(db: Database, query: str, space_id: int = 1) -> list[str]:
    terms = keyword_index.words(query)
    async with db.reads() as session:
        rows = await keyword_index.search(
            session, terms=terms, where=[MemoryRow.space_id == space_id], limit=10
        )
    return [row.text for row, _rank in rows]


async def test_upgrade_backfills_finds_every_language_and_downgrade_drops(empty_url: str) -> None:
    db = open_database(empty_url)
    try:
        await migrate.upgrade(db.write_engine, "0007")
        await _insert_old_rows(db)
        await migrate.upgrade(db.write_engine, "0008")
        assert await _find(db, "паспорт") == ["Паспорт лежит в синей папке"]  # case, Cyrillic
        assert await _find(db, "ПАСПОРТА") == []  # a longer word is not a prefix of a shorter
        assert await _find(db, "cafe") == ["Le café près de la gare ferme à 18h"]  # diacritics
        assert await _find(db, "PRES GARE") == ["Le café près de la gare ferme à 18h"]
        assert await _find(db, "schlussel") == [OLD_NOTES[2]]
        assert await _find(db, "Cancion") == [OLD_NOTES[3]]
        assert await _find(db, "call") == [OLD_NOTES[4]]  # begins "called", not inside "recall"
        assert await _find(db, "all") == []  # short terms: whole words only
        assert await _find(db, "ecall ocker") == []  # never inside a word
        assert await _find(db, "4471-QX") == [OLD_NOTES[5]]
        assert await _find(db, "bill phone") == [OLD_NOTES[4]]
        await migrate.upgrade(db.write_engine, "head")
        await _downgrade(db, "0007")

        def leftovers(connection: Connection) -> set[str]:
            schema = inspect(connection)
            names = set(schema.get_table_names())
            names |= {c["name"] for c in schema.get_columns("memories")}
            names |= {i["name"] or "" for i in schema.get_indexes("memories")}
            return {name for name in names if keyword_ddl.is_index_object(name)}

        async with db.write_engine.connect() as connection:
            assert await connection.run_sync(leftovers) == set()
            assert await connection.scalar(text("SELECT count(*) FROM memories")) == 6
        await migrate.upgrade(db.write_engine)  # and up again: backfilled again
        assert await _find(db, "паспорт") == ["Паспорт лежит в синей папке"]
    finally:
        await db.dispose()


async def test_user_input_never_breaks_the_query_syntax(empty_url: str) -> None:
    db = open_database(empty_url)
    try:
        await migrate.upgrade(db.write_engine)
        await _insert_old_rows(db)
        nasty = ['"', "'", "''", "*", "AND", "OR NOT", "NEAR(", ":*", "a\\b", "^", "-", "&|!"]
        async with db.reads() as session:
            for term in nasty:
                rows = await keyword_index.search(
                    session, terms=[term], where=[MemoryRow.space_id == 1], limit=5
                )
                assert rows == [], term
        assert await _find(db, 'паспорт" OR "*') == ["Паспорт лежит в синей папке"]
    finally:
        await db.dispose()


@pytest.fixture
async def fake_engine(settings: Settings) -> AsyncIterator[MemoryEngine]:
    opened = await open_engine(
        settings, embedder=Embedder(fake_encode), vectors=InMemoryVectorIndex(shards=4)
    )
    await opened.users.register(user_id=1, username="alice")
    yield opened
    await opened.aclose()


async def _keyword(engine: MemoryEngine, query: str) -> list[str]:
    hits = await engine.reads.recall(space_id=1, query=query, min_similarity=1.01)
    return [hit.memory.text for hit in hits if hit.keyword]


async def test_every_write_path_keeps_the_index_in_its_transaction(
    fake_engine: MemoryEngine,
) -> None:
    saved = await fake_engine.writes.save(space_id=1, text="Паспорт лежит в синей папке")
    assert await _keyword(fake_engine, "паспорт") == ["Паспорт лежит в синей папке"]
    many = await fake_engine.writes.save_many(space_id=1, texts=["zebra one", "zebra two"])
    assert sorted(await _keyword(fake_engine, "zebra")) == ["zebra one", "zebra two"]
    await fake_engine.writes.edit(space_id=1, memory_id=saved.memory.id, text="Ключи у Гали")
    assert await _keyword(fake_engine, "паспорт") == []
    assert await _keyword(fake_engine, "ключи") == ["Ключи у Гали"]
    await fake_engine.writes.forget(space_id=1, memory_id=many[0].memory.id)
    assert await _keyword(fake_engine, "zebra") == ["zebra two"]
    await fake_engine.writes.save(
        space_id=1, text="quokka soon gone", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    assert await _keyword(fake_engine, "quokka") == ["quokka soon gone"]
    async with fake_engine.stores.unit_of_work("test_age") as uow:  # let it expire now
        await uow.session.execute(
            text("UPDATE memories SET expires_at = :t WHERE expires_at IS NOT NULL"),
            {"t": (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None)},
        )
    assert len(await fake_engine.writes.expire_due()) == 1
    assert await fake_engine.writes.forget_all(space_id=1) == 2
    report = await fake_engine.index.check()
    assert (report.keyword.missing, report.keyword.stale, report.keyword.problems) == (0, 0, ())
    async with fake_engine.stores.db.reads() as session:
        assert await keyword_index.search(session, terms=["zebra"], where=[], limit=5) == []


async def test_check_reports_a_broken_keyword_index_and_repair_rebuilds_it(
    fake_engine: MemoryEngine,
) -> None:
    for body in ("blue folder with the passport", "green umbrella", "red scarf"):
        await fake_engine.writes.save(space_id=1, text=body)
    assert not (await fake_engine.index.check()).drift
    if fake_engine.stores.dialect != "sqlite":
        # a generated column cannot drift; check still looks for rows without a tsvector
        assert (await fake_engine.index.check()).as_dict()["keyword_index_missing"] == 0
        return
    async with fake_engine.stores.unit_of_work("test_break") as uow:
        await uow.session.execute(
            text(
                "INSERT INTO memories_fts(memories_fts, rowid, text) SELECT 'delete', rowid,"
                " text FROM memories WHERE text = 'green umbrella'"
            )
        )
        await uow.session.execute(text("DROP TRIGGER memories_fts_delete"))
        await uow.session.execute(text("DELETE FROM memories WHERE text = 'red scarf'"))
    broken = await fake_engine.index.check()
    assert broken.drift
    report = broken.as_dict()
    assert report["keyword_index_missing"] == 1
    assert report["keyword_index_stale"] == 1
    assert "trigger memories_fts_delete is missing" in report["keyword_index_problems"]
    assert await _keyword(fake_engine, "umbrella") == []
    await fake_engine.index.repair()
    fixed = await fake_engine.index.check()
    assert not fixed.keyword_drift, fixed.as_dict()
    assert await _keyword(fake_engine, "umbrella") == ["green umbrella"]
