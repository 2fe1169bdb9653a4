"""Circuit breakers for the two stores: when one keeps failing, work waits instead of failing.

A breaker opens after `failures` store errors in a row; while it is open, callers wait in
`wait_closed` and a probe asks the store every `probe_s` seconds whether it answers again.
Which store an error came from is read off its cause chain (`store_of`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from engine.errors import CompensationFailed, VectorWriteFailed
from engine.stores import Stores
from storage.metrics import BREAKER_OPENED

log = logging.getLogger("memorybot.breaker")
Probe = Callable[[], Awaitable[None]]
_DRIVERS = ("asyncpg", "sqlite3", "aiosqlite")
# SQLSTATE classes of an unreachable database: connection exception, insufficient resources,
# operator intervention (shutdown, starting up), system error.
_OUTAGE_SQLSTATES = ("08", "53", "57", "58")


class Store(StrEnum):
    SQL = "sql"
    VECTORS = "vectors"


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _driver_outage(link: BaseException) -> bool:
    """A database driver's error that says the database is unreachable, not that the
    statement or its data is wrong (that is the update's own failure: retried, parked)."""
    if isinstance(link, sqlite3.OperationalError):
        return True
    sqlstate = getattr(link, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] in _OUTAGE_SQLSTATES
    return type(link).__name__ == "InterfaceError"  # asyncpg: the connection is gone


def _raised_by_driver(link: BaseException) -> bool:
    """True for an OSError raised inside the database driver (asyncpg's connect lets a
    refused connection through unwrapped)."""
    frame = link.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVERS):
            return True
        frame = frame.tb_next
    return False


def store_of(error: BaseException) -> Store | None:
    """The store whose outage caused `error`, or None for any other failure."""
    for link in _chain(error):
        if isinstance(link, IntegrityError):
            return None
        if isinstance(link, VectorWriteFailed | CompensationFailed):
            return Store.VECTORS
        module = type(link).__module__
        if module.startswith("telegram"):  # the Bot API (PTB wraps its httpx errors)
            return None
        if module.startswith(("chromadb", "httpx", "httpcore")):
            return Store.VECTORS
        if isinstance(link, OperationalError) or (
            isinstance(link, DBAPIError) and link.connection_invalidated
        ):
            return Store.SQL
        if module.startswith(_DRIVERS) and _driver_outage(link):
            return Store.SQL
        if isinstance(link, OSError) and _raised_by_driver(link):
            return Store.SQL
    for link in _chain(error):
        if isinstance(link, ConnectionError | TimeoutError) and "chroma" in repr(link).lower():
            return Store.VECTORS
    return None


class CircuitBreaker:
    """Closed → open after `failures` errors in a row → closed again when a probe passes."""

    def __init__(self, store: Store, probe: Probe, *, failures: int, probe_s: float) -> None:
        self.store = store
        self._probe = probe
        self._threshold = failures
        self._probe_s = probe_s
        self._errors = 0
        self._closed = asyncio.Event()
        self._closed.set()
        self._prober: asyncio.Task[None] | None = None
        self.opened_at: float | None = None
        self.reason = ""

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    def success(self) -> None:
        """A call to the store worked."""
        self._errors = 0

    def failure(self, error: BaseException) -> bool:
        """A call failed because of this store; returns True if the breaker is (now) open."""
        self._errors += 1
        if self._errors >= self._threshold and not self.is_open:
            self.reason = f"{type(error).__name__}"
            self.opened_at = time.monotonic()
            self._closed.clear()
            BREAKER_OPENED.labels(self.store.value).inc()
            log.warning("breaker store=%s state=open after=%d errors", self.store, self._errors)
            self._prober = asyncio.create_task(self._probe_until_healthy())
        return self.is_open

    async def wait_closed(self) -> None:
        """Return at once while closed; else when a probe found the store healthy."""
        await self._closed.wait()

    async def _probe_until_healthy(self) -> None:
        while True:
            await asyncio.sleep(self._probe_s)
            try:
                await self._probe()
            except Exception as error:  # still down
                log.info("breaker store=%s probe failed: %s", self.store, type(error).__name__)
                continue
            self._errors = 0
            self._closed.set()
            down = time.monotonic() - (self.opened_at or time.monotonic())
            log.warning("breaker store=%s state=closed down_s=%.1f", self.store, down)
            return

    async def aclose(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)


class Breakers:
    """One breaker per store, probing that store through `stores`."""

    def __init__(self, stores: Stores, *, failures: int = 3, probe_s: float = 2.0) -> None:
        async def probe_sql() -> None:
            async with stores.db.reads() as session:
                await session.execute(text("SELECT 1"))

        async def probe_vectors() -> None:
            await stores.vectors.count()

        self.sql = CircuitBreaker(Store.SQL, probe_sql, failures=failures, probe_s=probe_s)
        self.vectors = CircuitBreaker(
            Store.VECTORS, probe_vectors, failures=failures, probe_s=probe_s
        )

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.sql, self.vectors))

    def of(self, store: Store) -> CircuitBreaker:
        return self.sql if store == Store.SQL else self.vectors

    @property
    def open(self) -> list[CircuitBreaker]:
        """The breakers that are open now."""
        return [b for b in (self.sql, self.vectors) if b.is_open]

    def success(self) -> None:
        """An update went through: both stores answered."""
        self.sql.success()
        self.vectors.success()

    async def wait_closed(self) -> None:
        """Wait until no breaker is open."""
        while self.open:
            await asyncio.gather(*(b.wait_closed() for b in self.open))

    async def aclose(self) -> None:
        await self.sql.aclose()
        await self.vectors.aclose()
