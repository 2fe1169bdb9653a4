"""Async SQLAlchemy engines and session factories for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 15_000
SQLITE_READ_POOL = 128  # kept open: each of up to 64 lanes (INBOX_PARALLEL_CHATS) reads up
# to two at a time, and a connection opened beyond the pool (an aiosqlite thread) is closed again
WriteSessions = Callable[[], contextlib.AbstractAsyncContextManager[AsyncSession]]


@dataclass(frozen=True)
class Database:
    """Session factories: `writes` for units of work, `reads` for queries.

    On SQLite, write transactions start with BEGIN IMMEDIATE so that two writers never fail
    when one upgrades a read lock, and the writers of this process queue on an asyncio lock
    first: SQLite's busy handler sleeps in growing steps, so 50 tasks contending for the one
    write lock would mostly sleep. Reads stay deferred and, thanks to WAL, never wait for a
    writer. On PostgreSQL both factories share one engine and writers run concurrently.
    """

    url: str
    write_engine: AsyncEngine
    read_engine: AsyncEngine
    writes: WriteSessions
    reads: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        return self.write_engine.dialect.name

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def _sqlite_engine(url: str, *, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        hide_parameters=True,
        pool_size=pool_size,  # kept open: each aiosqlite connection is a thread to start
        max_overflow=pool_size,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def _counted(engine: AsyncEngine) -> AsyncEngine:
    """Count the engine's commits and statements (memorybot_sql_*: what the benches read)."""
    from storage.metrics import SQL_COMMITS, SQL_STATEMENTS  # the metrics import repositories

    counts, others = SQL_STATEMENTS.labels("count"), SQL_STATEMENTS.labels("other")

    @event.listens_for(engine.sync_engine, "commit")
    def _on_commit(_connection: Any) -> None:
        SQL_COMMITS.inc()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _on_statement(*args: Any) -> None:
        statement: str = args[2]
        (counts if "count(" in statement[:200].lower() else others).inc()

    return engine


def _write_sessions(
    factory: async_sessionmaker[AsyncSession], lock: asyncio.Lock | None
) -> WriteSessions:
    @contextlib.asynccontextmanager
    async def open_session() -> AsyncIterator[AsyncSession]:
        async with contextlib.AsyncExitStack() as stack:
            if lock is not None:
                await stack.enter_async_context(lock)
            yield await stack.enter_async_context(factory())

    return open_session


def open_database(url: str) -> Database:
    """Build the engines for `url` (creating the SQLite file's folder if needed)."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        write_engine = _counted(_sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=2))
        read_engine = _counted(_sqlite_engine(url, begin="BEGIN", pool_size=SQLITE_READ_POOL))
        lock: asyncio.Lock | None = asyncio.Lock()
    else:
        write_engine = _counted(
            create_async_engine(
                url, pool_size=15, max_overflow=15, pool_pre_ping=True, hide_parameters=True
            )
        )
        read_engine = write_engine
        lock = None
    return Database(
        url=url,
        write_engine=write_engine,
        read_engine=read_engine,
        writes=_write_sessions(async_sessionmaker(write_engine, expire_on_commit=False), lock),
        reads=async_sessionmaker(read_engine, expire_on_commit=False),
    )
