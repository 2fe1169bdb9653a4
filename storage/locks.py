"""Cross-process job locks: PostgreSQL session advisory locks; SQLite runs one instance."""

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
async def advisory_lock(db: Database, job: str) -> AsyncIterator[bool]:
    """Yield True if this process may run `job` now (and hold the lock while it does).

    On PostgreSQL a session advisory lock on a dedicated autocommit connection decides;
    another instance holding it makes this yield False at once. On SQLite, one instance is
    assumed: always True.
    """
    if db.dialect != "postgresql":
        yield True
        return
    key = lock_key(job)
    async with db.write_engine.connect() as opened:
        connection = await opened.execution_options(isolation_level="AUTOCOMMIT")
        result = await connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
        acquired = bool(result.scalar())
        try:
            yield acquired
        finally:
            if acquired:
                await connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
