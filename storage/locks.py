"""Cross-process job leadership: a PostgreSQL session advisory lock on a dedicated connection.

Each `leader_lock` block opens its own asyncpg connection (never one of the pool that serves
other work), named `memorybot-leader:<job>` in `pg_stat_activity`, with server-side TCP
keepalives so the server drops the session (and so the lock) of a vanished host within
seconds. While the lock is held, the connection is watched: the driver reports a closed
connection at once (e.g. `pg_terminate_backend`), and a `SELECT 1` every `check_s` catches a
connection that went silent. Either way the `Lease` is lost at once: it turns falsy and its
`lost` event is set, so the job in hand stops at its next safe point. Another instance may
take the lock a moment later; work that must happen once is also claimed in SQL (see
storage.repositories.broadcasts), so two leaders at once still do not repeat it.

On SQLite one instance is assumed: the lease is always held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import make_url

from storage.db import Database

log = logging.getLogger("memorybot.leader")
APPLICATION_PREFIX = "memorybot-leader:"
DEFAULT_CHECK_S = 2.0
KEEPALIVE_PROBES = 3
ANSWER_S = 2.0  # a busy event loop may delay an answer this long without losing the lease


class Lease:
    """Leadership of one job as held: truthy while this process leads it.

    `lost` is set (and the lease turns falsy) the moment the lock's connection is gone;
    `pid` is the lock connection's server process id (PostgreSQL only).
    """

    def __init__(self, job: str, *, held: bool, pid: int | None = None) -> None:
        self.job = job
        self.pid = pid
        self.lost = asyncio.Event()
        self._held = held

    def __bool__(self) -> bool:
        return self._held and not self.lost.is_set()

    def __repr__(self) -> str:
        return f"Lease({self.job!r}, held={bool(self)}, pid={self.pid})"

    def release(self) -> None:
        """The block ended and the lock was given back (not a loss)."""
        self._held = False

    def lose(self, reason: str) -> None:
        """Leadership is gone (the lock's connection dropped): tell whoever holds it."""
        if self._held and not self.lost.is_set():
            log.warning("job=%s leadership lost: %s", self.job, reason)
        self.lost.set()


def lock_key(job: str) -> int:
    """A stable 32-bit advisory-lock key for `job`."""
    return zlib.crc32(f"memorybot:{job}".encode())


def application_name(job: str) -> str:
    """The `application_name` of the connection holding `job`'s lock."""
    return f"{APPLICATION_PREFIX}{job}"[:63]


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _connect(url: str, job: str, check_s: float) -> asyncpg.Connection:
    idle = str(max(1, round(check_s)))
    return await asyncpg.connect(
        _dsn(url),
        timeout=max(5.0, check_s * 2),
        command_timeout=max(5.0, check_s * 2),
        server_settings={
            "application_name": application_name(job),
            "tcp_keepalives_idle": idle,
            "tcp_keepalives_interval": idle,
            "tcp_keepalives_count": str(KEEPALIVE_PROBES),
        },
    )


async def _watch(connection: asyncpg.Connection, lease: Lease, check_s: float) -> None:
    """A cheap query every `check_s`; no answer within ANSWER_S (or `check_s` if longer)
    means the lease is lost."""
    while not lease.lost.is_set():
        await asyncio.sleep(check_s)
        try:
            await connection.fetchval("SELECT 1", timeout=max(check_s, ANSWER_S))
        except Exception as error:  # closed, broken or silent: whatever it is, it is gone
            lease.lose(f"heartbeat failed ({type(error).__name__})")
            connection.terminate()
            return


@contextlib.asynccontextmanager
async def leader_lock(
    db: Database, job: str, *, check_s: float = DEFAULT_CHECK_S
) -> AsyncIterator[Lease]:
    """Yield a Lease, truthy if this process leads `job` now (held until the block ends).

    Another session holding the lock makes the lease falsy at once (no waiting). Losing the
    lock's connection while in the block sets `lease.lost`: stop at the next safe point.
    """
    if db.dialect != "postgresql":
        yield Lease(job, held=True)
        return
    connection = await _connect(db.url, job, check_s)
    try:
        acquired = await connection.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(job))
        if not acquired:
            yield Lease(job, held=False)
            return
        lease = Lease(job, held=True, pid=connection.get_server_pid())

        def closed(_connection: object) -> None:
            lease.lose("lock connection closed")

        connection.add_termination_listener(closed)
        watching = asyncio.create_task(_watch(connection, lease, check_s), name=f"leader:{job}")
        try:
            yield lease
        finally:
            lease.release()
            connection.remove_termination_listener(closed)
            watching.cancel()
            await asyncio.wait({watching})  # never swallows a cancellation of our own
            if not lease.lost.is_set():
                with contextlib.suppress(Exception):
                    await connection.fetchval(
                        "SELECT pg_advisory_unlock($1)", lock_key(job), timeout=check_s
                    )
    finally:
        await _close(connection, check_s)


async def _close(connection: asyncpg.Connection, check_s: float) -> None:
    """Close the lock's connection (which frees any lock still on it); never hang on it."""
    if connection.is_closed():
        return
    try:
        await connection.close(timeout=check_s)
    except Exception:
        connection.terminate()
