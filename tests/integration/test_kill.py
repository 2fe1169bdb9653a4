"""Real crashes: a writer process SIGKILLed between vector write and commit, and a kill loop."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from chromadb.api.shared_system_client import SharedSystemClient

from engine.app import MemoryEngine
from engine.settings import Settings
from jobs import runs

# Kills per loop: a dozen by default (each costs a writer's start, ~2 s); set
# MEMORYBOT_KILL_ROUNDS=50 (or more) for a long run. The moments come from KILL_SEED, so a
# failing loop replays the same kills; MEMORYBOT_KILL_SEED tries other moments.
KILLS = int(os.environ.get("MEMORYBOT_KILL_ROUNDS", "12"))
KILL_SEED = int(os.environ.get("MEMORYBOT_KILL_SEED", "20261122"))
ITEMS = 2000


def writer_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "CHROMA_PATH": str(settings.chroma_path),
        "CHROMA_SHARDS": str(settings.chroma_shards),
        "HF_HUB_OFFLINE": "1",
        "LOG_LEVEL": "WARNING",
    }


async def start_writer(settings: Settings, *args: str, log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.writer_process",
        *args,
        env=writer_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=log.open("ab"),
    )


async def open_fresh(reopen: Any) -> MemoryEngine:
    SharedSystemClient.clear_system_cache()  # see the store as a new process would
    engine: MemoryEngine = await reopen()
    return engine


async def test_crash_between_vector_write_and_commit_is_swept(
    settings: Settings, reopen: Any, tmp_path: Path
) -> None:
    writer = await start_writer(settings, "save-then-die", log=tmp_path / "writer.log")
    await writer.wait()
    assert writer.returncode == -signal.SIGKILL
    engine = await open_fresh(reopen)
    report = await engine.index.check()
    assert (report.sql_count, report.vector_count, len(report.orphans)) == (0, 1, 1)
    assert (await runs.sweep(engine)).counts["skipped_in_grace"] == 1  # may still be in flight
    assert (await runs.sweep(engine, grace_s=0)).counts["orphans_deleted"] == 1
    assert not (await engine.index.check()).drift


@pytest.mark.slow
async def test_kill_loop_loses_no_acknowledged_save(
    settings: Settings, reopen: Any, tmp_path: Path
) -> None:
    """SIGKILL a bulk ingest KILLS times at seeded random moments; acknowledged saves always
    survive."""
    rng = random.Random(KILL_SEED)
    acked = -1
    kills = 0
    log = tmp_path / "writer.log"
    while acked < ITEMS - 1:
        writer = await start_writer(settings, "ingest", str(acked + 1), str(ITEMS), log=log)
        assert writer.stdout is not None
        assert (await asyncio.wait_for(writer.stdout.readline(), 120)).strip() == b"READY"
        deadline = asyncio.get_running_loop().time() + rng.uniform(0.05, 1.5)
        killed = False
        while True:
            timeout = deadline - asyncio.get_running_loop().time()
            if kills < KILLS and timeout <= 0:
                writer.send_signal(signal.SIGKILL)
                kills += 1
                killed = True
                break
            try:
                line = await asyncio.wait_for(
                    writer.stdout.readline(), timeout if kills < KILLS else 120
                )
            except TimeoutError:
                continue
            if line.startswith(b"ACK "):
                acked = int(line.split()[1])
            elif not line or line.strip() == b"DONE":
                break
        await writer.wait()
        if killed:
            assert writer.returncode == -signal.SIGKILL
    assert kills == KILLS
    engine = await open_fresh(reopen)
    await runs.sweep(engine, grace_s=0)
    report = await engine.index.check(space_id=1)
    assert not report.drift, report.as_dict()
    page = await engine.reads.page(space_id=1, limit=ITEMS * 2)
    texts = [m.text for m in page.items]
    assert sorted(texts) == sorted(f"ingested item {i}" for i in range(ITEMS))  # once each
    assert report.vector_count == ITEMS
