"""One leader per job: a PostgreSQL advisory lock; SQLite runs a single instance by design."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncIterator

from sqlalchemy import text

from storage.db import Database


def lock_key(job: str) -> int:
    """A stable 32-bit advisory-lock key for `job`."""
    return zlib.crc32(f"memorybot:{job}".encode())


@contextlib.asynccontextmanager
async def leadership(db: Database, job: str) -> AsyncIterator[bool]:
    """Yield True if this process may run `job` now (and hold the lock while it does).

    On PostgreSQL a session advisory lock on a dedicated connection decides; another instance
    holding it makes this yield False at once. On SQLite, one instance is assumed: always True.
    """
    if db.dialect != "postgresql":
        yield True
        return
    key = lock_key(job)
    async with db.write_engine.connect() as connection:
        acquired = bool(
            (
                await connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
            ).scalar()
        )
        await connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                await connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                await connection.commit()
