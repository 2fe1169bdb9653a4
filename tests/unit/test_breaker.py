"""Circuit breakers: which store an error blames (`store_of`), and open → probe → closed.

`store_of` decides whether a failure pauses all work (a store is down: wait, count nothing)
or is the update's own (retried, then parked). Blaming a store for an error that is not an
outage would retry a poison update for ever; missing an outage would park good updates.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import asyncpg
import chromadb.errors
import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine
from telegram.error import NetworkError, TimedOut

from engine.app import MemoryEngine
from engine.breaker import Breakers, CircuitBreaker, Store, store_of
from engine.errors import CompensationFailed, SqlWriteFailed, VectorWriteFailed
from tests.conftest import PG_ADMIN
from tests.fakes.vector_index import InMemoryVectorIndex

PG_URL = PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://", 1)


def caused(outer: BaseException, cause: BaseException) -> BaseException:
    """`outer` raised `from cause`."""
    outer.__cause__ = cause
    return outer


def operational() -> OperationalError:
    return OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))


def raised_in_handling(cause: BaseException, outer: Callable[[], BaseException]) -> BaseException:
    """`outer()` raised while handling `cause` (an implicit `__context__`)."""

    def fail() -> None:
        raise cause

    try:
        try:
            fail()
        except BaseException:
            raise outer()  # noqa: B904 - the implicit context is the point
    except BaseException as error:
        return error
    raise AssertionError("unreachable")


# ---- store_of -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "store"),
    [
        (VectorWriteFailed("save", ["m1"], ConnectionError("refused")), Store.VECTORS),
        (CompensationFailed("save", ["m1"]), Store.VECTORS),
        (SqlWriteFailed("save", ["m1"], operational()), Store.SQL),
        (operational(), Store.SQL),
        (caused(RuntimeError("save failed"), operational()), Store.SQL),
        (raised_in_handling(operational(), lambda: KeyError("x")), Store.SQL),
        (chromadb.errors.InternalError("server is down"), Store.VECTORS),
        (caused(RuntimeError("recall"), httpx.ConnectError("refused")), Store.VECTORS),
        (httpx.ReadTimeout("chroma did not answer"), Store.VECTORS),
        (ConnectionError("chroma server at localhost:8000 refused"), Store.VECTORS),
    ],
    ids=[
        "vector-write-failed",
        "compensation-failed",
        "sql-write-failed-operational",
        "operational",
        "operational-as-cause",
        "operational-as-context",
        "chromadb-error",
        "httpx-connect-as-cause",
        "httpx-timeout",
        "connection-error-naming-chroma",
    ],
)
def test_outages_are_blamed_on_their_store(error: BaseException, store: Store) -> None:
    assert store_of(error) == store


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
        SqlWriteFailed(
            "save", ["m1"], IntegrityError("INSERT", {}, sqlite3.IntegrityError("CHECK"))
        ),
        ValueError("bad input"),
        RuntimeError("a bug in a handler"),
        KeyError("missing"),
        ConnectionError("somebody else's server"),
        TimeoutError(),
        SqlWriteFailed("save", ["m1"]),
    ],
    ids=[
        "integrity",
        "integrity-in-sql-write-failed",
        "value-error",
        "runtime-error",
        "key-error",
        "connection-error-elsewhere",
        "timeout-elsewhere",
        "sql-write-failed-without-cause",
    ],
)
def test_other_failures_blame_no_store(error: BaseException) -> None:
    assert store_of(error) is None


def telegram_network_error(cause: httpx.HTTPError) -> NetworkError:
    """What PTB's HTTPXRequest raises when the Bot API cannot be reached."""
    error = (
        TimedOut()
        if isinstance(cause, httpx.TimeoutException)
        else NetworkError(f"httpx.{type(cause).__name__}: {cause}")
    )
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    "cause",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("x"),
    ],
    ids=["connect", "read-timeout", "protocol"],
)
def test_the_bot_api_being_unreachable_is_not_a_vector_store_outage(
    cause: httpx.HTTPError,
) -> None:
    # PTB talks to Telegram through httpx too: a failed sendMessage must be retried and
    # parked like any failure, not pause every chat waiting for Chroma (which is fine).
    assert store_of(telegram_network_error(cause)) is None


def test_a_cycle_in_the_cause_chain_ends() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__cause__, second.__cause__ = second, first
    assert store_of(first) is None


# ---- store_of on real driver errors -------------------------------------------------------------
def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


async def error_of(url: str, sql: str, params: dict[str, object] | None = None) -> BaseException:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            for statement in sql.split(";"):
                await connection.execute(text(statement), params or {})
    except Exception as error:
        return error
    finally:
        await engine.dispose()
    raise AssertionError(f"{sql!r} did not fail")


async def test_postgresql_refusing_connections_is_an_sql_outage() -> None:
    error = await error_of(
        f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/x", "SELECT 1"
    )
    assert isinstance(error, OSError)  # asyncpg's connect error reaches us unwrapped
    assert store_of(error) == Store.SQL


def test_an_unopenable_sqlite_file_is_an_sql_outage(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        with pytest.raises(OperationalError) as caught, engine.connect():
            pass
    finally:
        engine.dispose()
    assert store_of(caught.value) == Store.SQL


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("CREATE TEMP TABLE t (v varchar(2)); INSERT INTO t VALUES ('abc')", None),
        ("SELECT 1 / 0", None),
        ("SELECT CAST(:x AS int)", {"x": "not a number"}),
    ],
    ids=["value-too-long", "division-by-zero", "client-side-data-error"],
)
async def test_postgresql_rejecting_the_data_is_not_an_outage(
    sql: str, params: dict[str, object] | None
) -> None:
    # Retrying such an update cannot help: it must be counted and parked, not wait for ever.
    error = await error_of(PG_URL, sql, params)
    assert isinstance(error, DBAPIError)
    assert store_of(error) is None


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
    ],
    ids=["closed", "admin-shutdown", "too-many-connections", "starting-up", "interface"],
)
def test_postgresql_going_away_is_an_sql_outage(error: BaseException) -> None:
    wrapped = caused(DBAPIError("SELECT 1", {}, Exception("x")), error)
    assert store_of(wrapped) == Store.SQL


def test_sqlite_rejecting_a_parameter_is_not_an_outage() -> None:
    wrapped = caused(
        DBAPIError("SELECT ?", {}, Exception("x")),
        sqlite3.ProgrammingError("Error binding parameter 1: type 'object' is not supported"),
    )
    assert store_of(wrapped) is None


# ---- CircuitBreaker -----------------------------------------------------------------------------
class Probe:
    """A store that is down until `heal()`; counts the probes."""

    def __init__(self) -> None:
        self.healthy = False
        self.calls = 0
        self.failed_twice = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if not self.healthy:
            if self.calls >= 2:
                self.failed_twice.set()
            raise ConnectionError("still down")

    def heal(self) -> None:
        self.healthy = True


async def test_breaker_opens_after_n_failures_in_a_row() -> None:
    breaker = CircuitBreaker(Store.SQL, Probe(), failures=3, probe_s=60)
    try:
        assert not breaker.failure(operational())
        assert not breaker.failure(operational())
        assert not breaker.is_open
        assert breaker.failure(operational())
        assert breaker.is_open
        assert breaker.reason == "OperationalError"
        assert breaker.failure(operational())  # stays open
    finally:
        await breaker.aclose()


async def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(Store.SQL, Probe(), failures=3, probe_s=60)
    try:
        for _ in range(5):
            breaker.failure(operational())
            breaker.failure(operational())
            breaker.success()
        assert not breaker.is_open
    finally:
        await breaker.aclose()


async def test_wait_closed_returns_at_once_while_closed() -> None:
    breaker = CircuitBreaker(Store.VECTORS, Probe(), failures=1, probe_s=60)
    await asyncio.wait_for(breaker.wait_closed(), timeout=5)


async def test_wait_closed_blocks_while_open_until_a_probe_passes() -> None:
    probe = Probe()
    breaker = CircuitBreaker(Store.VECTORS, probe, failures=2, probe_s=0.01)
    try:
        breaker.failure(ConnectionError("chroma down"))
        breaker.failure(ConnectionError("chroma down"))
        waiter = asyncio.create_task(breaker.wait_closed())
        await asyncio.wait_for(probe.failed_twice.wait(), timeout=5)
        assert breaker.is_open
        assert not waiter.done()  # failed probes keep it open
        probe.heal()
        await asyncio.wait_for(waiter, timeout=5)
        assert not breaker.is_open
        assert not breaker.failure(ConnectionError("one blip"))  # the count starts afresh
    finally:
        await breaker.aclose()


async def test_aclose_stops_the_probing() -> None:
    probe = Probe()
    breaker = CircuitBreaker(Store.SQL, probe, failures=1, probe_s=0.01)
    breaker.failure(operational())
    await asyncio.wait_for(probe.failed_twice.wait(), timeout=5)
    await breaker.aclose()
    calls = probe.calls
    await asyncio.sleep(0.05)
    assert probe.calls == calls
    assert breaker.is_open


# ---- Breakers: one per store, probing the real stores -------------------------------------------
async def test_breakers_probe_each_store_and_wait_for_both(
    fake_engine: MemoryEngine, fake_index: InMemoryVectorIndex
) -> None:
    breakers = Breakers(fake_engine.stores, failures=1, probe_s=0.01)
    try:
        assert breakers.of(Store.SQL) is breakers.sql
        assert breakers.of(Store.VECTORS) is breakers.vectors
        assert list(breakers) == [breakers.sql, breakers.vectors]
        fake_index.fail_next.add("count")  # the first vector probe fails
        assert breakers.vectors.failure(ConnectionError("chroma down"))
        assert breakers.sql.failure(operational())
        assert breakers.open == [breakers.sql, breakers.vectors]
        await asyncio.wait_for(breakers.wait_closed(), timeout=5)  # SELECT 1, then count()
        assert breakers.open == []
        assert [m for m, _ in fake_index.calls].count("count") >= 2
    finally:
        await breakers.aclose()


async def test_breakers_success_resets_both_counts(fake_engine: MemoryEngine) -> None:
    breakers = Breakers(fake_engine.stores, failures=2, probe_s=60)
    try:
        breakers.sql.failure(operational())
        breakers.vectors.failure(ConnectionError("chroma down"))
        breakers.success()
        assert not breakers.sql.failure(operational())
        assert not breakers.vectors.failure(ConnectionError("chroma down"))
        assert breakers.open == []
    finally:
        await breakers.aclose()
