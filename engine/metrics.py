"""Health and metrics for the operations endpoint (`bot.ops_http`).

The metric objects live in `storage.metrics` (the lowest layer, so storage and engine can
count); they are re-exported here for the bot, which does not import storage. `health`
answers whether this process can work now; `refresh_state` reads what the state gauges show.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from sqlalchemy import text

from engine.breaker import Breakers
from engine.clock import utcnow
from engine.stores import Stores
from storage.metrics import (
    LOOP_LAG_SECONDS,
    REGISTRY,
    SEND_BUDGET,
    STATE,
    UPDATE_SECONDS,
    UPDATES_PARKED,
    UPDATES_PROCESSED,
    UPDATES_RECEIVED,
    WORKERS_RUNNING,
    State,
    read_sql_state,
)

__all__ = [
    "LOOP_LAG_SECONDS",
    "REGISTRY",
    "SEND_BUDGET",
    "UPDATES_PARKED",
    "UPDATES_PROCESSED",
    "UPDATES_RECEIVED",
    "UPDATE_SECONDS",
    "WORKERS_RUNNING",
    "Health",
    "refresh_state",
]

log = logging.getLogger("memorybot.ops")
PROBE_TIMEOUT_S = 2.0
SWEEP_AUDIT = "job:sweep"  # the audit action jobs.runs.run_job records for the sweep


class Health:
    """Probes of both stores, each bounded by `timeout_s`; at most one Chroma probe runs at
    a time (a hung server keeps one worker thread, not one per request)."""

    def __init__(
        self, stores: Stores, breakers: Breakers, *, timeout_s: float = PROBE_TIMEOUT_S
    ) -> None:
        self._stores = stores
        self._breakers = breakers
        self._timeout_s = timeout_s
        self._vector_probe: asyncio.Future[int] | None = None

    async def reasons(self) -> list[str]:
        """Why this process cannot work now (empty: healthy).

        Returns:
            One line per problem: a store that does not answer within the timeout (with the
            error's type), or an open circuit breaker (with the error that opened it).
        """
        sql, vectors = await asyncio.gather(
            self._probe("sql", self._select_one()), self._probe("vectors", self._count())
        )
        found = [reason for reason in (sql, vectors) if reason]
        for breaker in self._breakers.open:
            found.append(f"breaker {breaker.store} open ({breaker.reason})")
        return found

    async def _select_one(self) -> None:
        async with self._stores.db.reads() as session:
            await session.execute(text("SELECT 1"))

    async def _count(self) -> None:
        if self._vector_probe is None or self._vector_probe.done():
            self._vector_probe = asyncio.ensure_future(self._stores.vectors.count())
            self._vector_probe.add_done_callback(lambda f: f.cancelled() or f.exception())
        await asyncio.shield(self._vector_probe)

    async def _probe(self, store: str, call: Awaitable[None]) -> str:
        try:
            await asyncio.wait_for(call, self._timeout_s)
        except TimeoutError:
            return f"{store}: no answer within {self._timeout_s:g}s"
        except Exception as error:
            log.info("health probe store=%s failed: %s", store, _named(error))
            return f"{store}: {_named(error)}"
        return ""


def _named(error: BaseException) -> str:
    """The error's type, and its root cause's when that differs (types only: no texts)."""
    root = error
    for _ in range(20):  # a cause chain is short; never loop on a cycle
        if root.__cause__ is None:
            break
        root = root.__cause__
    outer, inner = type(error).__name__, type(root).__name__
    return outer if inner == outer else f"{outer} ({inner})"


async def refresh_state(
    stores: Stores, breakers: Breakers, *, timeout_s: float = PROBE_TIMEOUT_S
) -> None:
    """Set what the next scrape shows: breakers now, and SQL's counts if SQL answers in time.

    Args:
        stores: the stores whose SQL is read.
        breakers: this process's circuit breakers.
        timeout_s: how long SQL may take; without an answer the SQL gauges are left out.
    """
    open_now = {str(b.store): b.is_open for b in breakers}

    async def read() -> State:
        async with stores.db.reads() as session:
            sql = await read_sql_state(session, now=utcnow(), sweep_action=SWEEP_AUDIT)
        return State(open_now, sql)

    try:
        STATE.state = await asyncio.wait_for(read(), timeout_s)
    except Exception as error:
        log.info("metrics: SQL state not read: %s", type(error).__name__)
        STATE.state = State(open_now, None)
