"""Migrations run on both databases and produce exactly the schema the models describe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import chromadb
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from engine.app import MemoryEngine, open_engine
from engine.memory import text_digest
from engine.settings import Settings
from storage import migrate
from storage.db import open_database
from storage.embedder import Embedder
from storage.filters import MemoryFilter
from storage.keyword_ddl import is_index_object
from storage.models import Base
from tests.conftest import _pg, fake_encode

NOW = datetime(2026, 11, 1, tzinfo=UTC).replace(tzinfo=None)
HASHTAGS = (" #Home #Café", "", " #home", " C# &#38;")  # by n % 4: tags to find in old texts


async def test_database_is_at_head_and_matches_the_models(engine: MemoryEngine) -> None:
    assert await migrate.current_revision(engine.stores.db.write_engine) == migrate.head_revision()

    def diff(connection: Connection) -> list[Any]:
        # the keyword index (a virtual table, a generated column) is left out of the models
        opts = {"include_name": lambda name, _type, _parents: not is_index_object(name)}
        context = MigrationContext.configure(connection, opts=opts)
        return list(compare_metadata(context, Base.metadata))

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


async def test_workers_starting_together_migrate_one_after_the_other() -> None:
    """PostgreSQL only: SQLite belongs to one process (several workers need PostgreSQL)."""
    name = f"memorybot_migration_{uuid.uuid4().hex[:8]}"
    await _pg(f'CREATE DATABASE "{name}"')
    databases = [
        open_database(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}") for _ in "ab"
    ]
    try:
        await asyncio.gather(*(migrate.upgrade(db.write_engine) for db in databases))
        for db in databases:
            assert await migrate.current_revision(db.write_engine) == migrate.head_revision()
    finally:
        for db in databases:
            await db.dispose()
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


async def _populate_0004(url: str) -> list[tuple[str, int, str]]:
    """A database at 0004 as the bot left it: two users, their memories, a pending /save."""
    db = open_database(url)
    memories = [
        (str(uuid.uuid4()), 1 + n % 2, f"old note {n} about the blue drawer" + HASHTAGS[n % 4])
        for n in range(12)
    ]
    try:
        await migrate.upgrade(db.write_engine, "0004")
        async with db.write_engine.begin() as connection:
            for user_id in (1, 2):
                await connection.execute(
                    text(
                        "INSERT INTO users (id, role, is_active, ops_today, state, state_payload,"
                        " state_updated_at, created_at, last_seen_at) VALUES"
                        " (:id, 'user', true, 0, :state, :payload, :t, :t, :t)"
                    ),
                    {
                        "id": user_id,
                        "state": "awaiting_save" if user_id == 2 else None,
                        "payload": '{"ttl_s": 60}' if user_id == 2 else None,
                        "t": NOW,
                    },
                )
            for n, (memory_id, user_id, body) in enumerate(memories):
                await connection.execute(
                    text(
                        "INSERT INTO memories (id, user_id, text, kind, tags, chat_id, message_id,"
                        " created_at, updated_at) VALUES"
                        " (:id, :user_id, :text, 'note', :tags, :chat, :message, :t, :t)"
                    ),
                    {
                        "id": uuid.UUID(memory_id).hex,
                        "user_id": user_id,
                        "text": body,
                        "tags": '["Trip"]' if n == 2 else "[]",
                        "chat": user_id,
                        "message": n,
                        "t": NOW,
                    },
                )
    finally:
        await db.dispose()
    return memories


def _legacy_vectors(path: Path, memories: list[tuple[str, int, str]], shards: int) -> None:
    """Chroma as the bot wrote it before spaces: `user_id` metadata, sharded by user."""
    client = chromadb.PersistentClient(
        path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
    )
    embeddings = fake_encode([body for _, _, body in memories])
    for (memory_id, user_id, body), embedding in zip(memories, embeddings, strict=True):
        collection = client.get_or_create_collection(
            f"memories-g1-s{user_id % shards:03d}",
            metadata={"hnsw:space": "cosine"},
            embedding_function=None,
        )
        meta: dict[str, str | int] = {"user_id": user_id, "memory_id": memory_id}
        meta |= {"created_at": 0, "digest": text_digest(body), "written_at": 0}
        collection.upsert(ids=[memory_id], embeddings=[embedding.tolist()], metadatas=[meta])
    SharedSystemClient.clear_system_cache()


async def test_0005_moves_memories_into_personal_spaces_and_check_is_clean(
    empty_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    memories = await _populate_0004(empty_database)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=empty_database,
        chroma_path=tmp_path / "chroma",
        chroma_shards=4,
    )
    _legacy_vectors(settings.chroma_path, memories, shards=4)
    engine = await open_engine(settings, embedder=Embedder(fake_encode))
    try:
        report = await engine.index.check()
        for user_id in (1, 2):
            page = await engine.reads.page(space_id=user_id, limit=100)
            mine = sorted(body for _, owner, body in memories if owner == user_id)
            assert sorted(m.text for m in page.items) == mine
            assert {(m.space_id, m.author_id) for m in page.items} == {(user_id, user_id)}
            hits = await engine.reads.recall(space_id=user_id, query="blue drawer note")
            assert hits
            assert {h.memory.space_id for h in hits} == {user_id}
        # old texts' hashtags became tags (n = 0, 4, 8 and 2, 6, 10 are user 1's)
        assert await engine.reads.tags(space_id=1) == [("home", 6), ("café", 3), ("trip", 1)]
        assert await engine.reads.tags(space_id=2) == []
        tagged = await engine.reads.page(
            space_id=1, limit=100, wanted=MemoryFilter(tags=("home",))
        )
        assert tagged.total == 6
        async with engine.stores.reading() as repos:
            pending = await repos.conversations.get(2, 2)
        assert pending is not None
        assert pending[:2] == ("awaiting_save", {"ttl_s": 60})
        assert (report.sql_count, report.vector_count, report.drift) == (12, 12, False)
        assert engine.index.generation == 2  # rebuilt once, from SQL, with space metadata
        with capsys.disabled():
            print(
                f"\n[migration 0005, {engine.stores.dialect}] memories before=12 "
                f"after={report.sql_count}, vectors after={report.vector_count}, "
                f"generation={engine.index.generation}, check={report.as_dict()}"
            )
    finally:
        await engine.aclose()
