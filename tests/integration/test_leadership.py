"""Job leadership on a dedicated, watched connection (the real PostgreSQL).

One of two instances leads a job. Ending the leader's lock connection from elsewhere
(`pg_terminate_backend`, the backend found by its application_name) loses leadership at once
and lets the other instance take over; a connection that goes silent is noticed by the
heartbeat. A job stops at its next safe point once its leadership is lost. On SQLite one
instance is assumed: it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from engine.settings import Settings
from jobs import runs
from storage.locks import Lease
from tests.integration.leader_kit import (
    engines_on,
    pg_settings_for,
    terminate_lock_connection,
)

LOST_WITHIN_S = 15.0  # failure bound only: the leader check runs every 0.5 s here


@pytest.fixture
async def pg_settings(pg_database: str, tmp_path: Path, model_cache: Path) -> Settings:
    return await pg_settings_for(pg_database, tmp_path, model_cache)


async def test_one_of_two_instances_leads_a_job(pg_settings: Settings, tmp_path: Path) -> None:
    async with engines_on(pg_settings, tmp_path) as open_engine:
        first, second = await open_engine(), await open_engine()
        async with first.stores.leadership("sweep") as lease:
            assert lease
            assert lease.pid is not None
            async with second.stores.leadership("sweep") as other:
                assert not other
            async with first.stores.leadership("sweep") as again:  # even in the same process
                assert not again
            skipped = await runs.sweep(second)
            assert (skipped.ran, skipped.describe()) == (
                False,
                "sweep: skipped, another instance is running it",
            )
            async with second.stores.leadership("expire") as another_job:
                assert another_job  # one lock per job
        assert not lease  # given back at the end of the block
        async with second.stores.leadership("sweep") as after:
            assert after


async def test_ending_the_lock_connection_hands_leadership_over(
    pg_settings: Settings, tmp_path: Path
) -> None:
    async with engines_on(pg_settings, tmp_path) as open_engine:
        first, second = await open_engine(), await open_engine()
        async with first.stores.leadership("broadcast") as lease:
            assert lease
            async with second.stores.leadership("broadcast") as other:
                assert not other
            assert await terminate_lock_connection(pg_settings, "broadcast") == [lease.pid]
            await asyncio.wait_for(lease.lost.wait(), LOST_WITHIN_S)
            assert not lease
            async with second.stores.leadership("broadcast") as taken:
                assert taken, "the lock died with its connection: the other instance leads"
                async with first.stores.leadership("broadcast") as back:
                    assert not back


async def test_a_job_stops_between_batches_once_leadership_is_lost(
    pg_settings: Settings, tmp_path: Path
) -> None:
    batches: list[int] = []

    async def work(lease: Lease) -> dict[str, int]:
        while lease and len(batches) < 100:
            batches.append(len(batches))
            if len(batches) == 3:
                await terminate_lock_connection(pg_settings, "expire")
            await asyncio.sleep(0.05)
        return {"batches": len(batches)}

    async with engines_on(pg_settings, tmp_path) as open_engine:
        engine = await open_engine()
        outcome = await runs.run_job(engine, "expire", work)
        assert outcome.ran
        assert outcome.stopped
        assert 3 <= len(batches) < 100
        assert "stopped: leadership lost" in outcome.describe()
        [entry] = [e for e in await engine.admin.latest_audit(limit=5) if e.action == "job:expire"]
        assert entry.details["stopped"] == 1


class Proxy:
    """A loopback TCP proxy to PostgreSQL that can go silent (a network that drops packets)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.flowing = asyncio.Event()  # cleared: the network goes silent
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                await self.flowing.wait()  # held back, not refused: nothing tells either side
                sink.write(data)
                await sink.drain()
            sink.close()

        await asyncio.gather(
            pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
        )


@pytest.fixture
async def proxy(pg_settings: Settings) -> AsyncIterator[Proxy]:
    started = Proxy(make_url(pg_settings.database_url).port or 5432)
    await started.start()
    yield started
    started.flowing.set()
    await started.stop()


async def test_a_silent_lock_connection_is_noticed_by_the_heartbeat(
    pg_settings: Settings, proxy: Proxy, tmp_path: Path
) -> None:
    url = make_url(pg_settings.database_url).set(port=proxy.port)
    behind_proxy = pg_settings.model_copy(update={"database_url": url.render_as_string(False)})
    async with (
        engines_on(behind_proxy, tmp_path / "a") as open_a,
        engines_on(pg_settings, tmp_path / "b") as open_b,
    ):
        first, second = await open_a(), await open_b()
        async with first.stores.leadership("sweep") as lease:
            assert lease
            proxy.flowing.clear()  # no error, no close: only the heartbeat can tell
            await asyncio.wait_for(lease.lost.wait(), LOST_WITHIN_S)
            assert not lease
            proxy.flowing.set()
            # the lost leader closed its lock connection: the server let go of the lock
            took = False
            for _ in range(100):
                async with second.stores.leadership("sweep") as taken:
                    took = bool(taken)
                if took:
                    break
                await asyncio.sleep(0.1)
            assert took, "the other instance leads once the silent leader let go"


async def test_sqlite_has_one_instance_and_it_always_leads(
    tmp_path: Path, model_cache: Path
) -> None:
    sqlite = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'one.db'}",
        model_cache_path=model_cache,
        leader_check_s=0.2,
    )
    async with engines_on(sqlite, tmp_path) as open_engine:
        first, second = await open_engine(), await open_engine()
        async with (
            first.stores.leadership("sweep") as lease,
            second.stores.leadership("sweep") as again,
        ):
            assert lease
            assert again
            assert lease.pid is None
            await asyncio.sleep(0.5)  # a few leader checks' time: nothing to lose
            assert lease
            assert not lease.lost.is_set()
