"""Loopback services for multi-process tests and benches: free ports, a fresh PostgreSQL
database, a `chroma run` server."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg

PG_ADMIN = os.environ.get("MEMORYBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    """A TCP port nobody listens on right now (on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def fresh_pg_database(prefix: str = "scale") -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (SQLAlchemy URL), dropped on the way out."""
    name = f"memorybot_{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    """A `chroma run` server on a free loopback port, data under `path`; yields its URL."""
    port, chroma = free_port(), Path(sys.executable).parent / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    with (path / "server.log").open("w") as log:
        argv = [str(chroma), "run", "--path", str(path / "data"), "--port", str(port)]
        process = subprocess.Popen([*argv, "--host", "127.0.0.1"], stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"chroma did not start; see {path}") from None
                    time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=20)
