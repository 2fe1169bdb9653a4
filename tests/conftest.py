"""Shared fixtures: both databases for real, embedded and server Chroma, the real model once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from engine.app import MemoryEngine, open_engine
from engine.faults import Faults
from engine.index_model import backend_to_run
from engine.settings import Settings
from storage.embedder import Embedder, sentence_transformer_encoder

pytest_plugins = ["tests.tiers"]

PG_ADMIN = os.environ.get("MEMORYBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES = "audit_log, memories, users, kv, inbox, dead_letters, broadcast_deliveries, broadcasts"


def fake_encode(texts: list[str]) -> np.ndarray:
    """Deterministic bag-of-words vectors: shared words mean similar vectors."""
    rows = np.zeros((len(texts), 384), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            slot = int(hashlib.md5(word.encode()).hexdigest(), 16) % 384
            rows[i, slot] += 1.0
        norm = float(np.linalg.norm(rows[i]))
        rows[i] = rows[i] / norm if norm else rows[i]
        if not norm:
            rows[i, 0] = 1.0
    return rows


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ONNX export of the model per test session, never in the repository's ./data.

    Also exported as MODEL_CACHE_PATH, so the bot and writer subprocesses reuse it.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one export for all workers of this run
        path = tmp_path_factory.getbasetemp().parent / "models"  # (the export takes a lock)
    else:
        path = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_CACHE_PATH", str(path))
        yield path


@pytest.fixture(scope="session")
def real_encode(model_cache: Path) -> Callable[[list[str]], np.ndarray]:
    """The real all-MiniLM-L6-v2, loaded once per test session.

    It runs on the backend a new index gets (int8), or the one EMBEDDING_BACKEND names.
    """
    defaults = Settings(_env_file=None, model_cache_path=model_cache)  # type: ignore[call-arg]
    return sentence_transformer_encoder(
        defaults.embedding_model,
        backend=backend_to_run(defaults, None, has_vectors=False, rebuild=False),
        cache_path=defaults.model_cache_path,
    )


async def _pg(sql: str, database: str = "postgres") -> None:
    connection = await asyncpg.connect(PG_ADMIN.rsplit("/", 1)[0] + "/" + database)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped at the end)."""
    name = f"memorybot_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    yield name
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path, pg_database: str) -> str:
    """Every engine test runs on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'memorybot.db'}"
    with contextlib.suppress(asyncpg.UndefinedTableError):  # first test: not migrated yet
        await _pg(f"TRUNCATE {TABLES} CASCADE", pg_database)
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_database}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, model_cache: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        chroma_path=tmp_path / "chroma",
        chroma_url=None,
        chroma_shards=4,
        bulk_chunk_size=64,
        model_cache_path=model_cache,
    )


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
async def engine(
    settings: Settings, real_encode: Callable[[list[str]], np.ndarray], faults: Faults
) -> AsyncIterator[MemoryEngine]:
    """The whole engine on the real model, real Chroma (embedded) and the parametrized DB."""
    opened = await open_engine(settings, embedder=Embedder(real_encode), faults=faults)
    yield opened
    await opened.aclose()


@pytest.fixture
async def reopen(
    settings: Settings, real_encode: Callable[[list[str]], np.ndarray]
) -> AsyncIterator[Callable[[], Any]]:
    """Open a second, independent engine (fresh sessions, fresh Chroma client)."""
    opened: list[MemoryEngine] = []

    async def _open() -> MemoryEngine:
        fresh = await open_engine(settings, embedder=Embedder(real_encode), upgrade=False)
        opened.append(fresh)
        return fresh

    yield _open
    for item in opened:
        await item.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server on a free loopback port."""
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    chroma = Path(sys.executable).parent / "chroma"
    log = (path / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(path / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"chroma server did not start; see {path / 'server.log'}"
                ) from None
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=20)
    log.close()
