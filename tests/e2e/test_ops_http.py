"""The operations endpoint over real HTTP: /healthz follows the stores and the breakers,
/metrics parses as Prometheus text and its counters move when the bot works.

The bot runs for real (emulator over HTTP, real model, real Chroma, SQLite and PostgreSQL).
Outages are real too: a `chroma run` server of the test is SIGKILLed and started again, and
the test's PostgreSQL database stops accepting connections for a while.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot.runner import BotRuntime, polling_intake, running_bot
from bot.webhook import SECRET_HEADER, webhook_app
from botapi_emulator import BotApiEmulator
from engine.faults import Step
from engine.schedule import Schedule
from engine.settings import Settings
from jobs.runs import sweep
from tests.conftest import PG_ADMIN, _free_port
from tests.e2e.conftest import BotUnderTest
from tests.e2e.test_outages import ChromaServer

USER = 93_001
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
WAIT_S = 60.0


def with_ops(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"metrics_port": _free_port(), **changes})


def base_of(settings: Settings) -> str:
    return f"http://{settings.metrics_host}:{settings.metrics_port}"


async def healthz(settings: Settings) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{base_of(settings)}/healthz") as r:
        return r.status, await r.json()


async def scrape(settings: Settings) -> Samples:
    """GET /metrics, parsed by prometheus_client's own parser."""
    async with aiohttp.ClientSession() as http, http.get(f"{base_of(settings)}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        body = await r.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def health_becomes(settings: Settings, status: int) -> dict[str, Any]:
    """Poll /healthz until it answers `status`; its JSON body."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        got, body = await healthz(settings)
        if got == status:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"/healthz still {got} {body}")
        await asyncio.sleep(0.2)


@pytest.fixture
async def ops_bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """The polling bot with the endpoint on a free port; a breaker that opens at the first
    store failure and does not close during the test."""
    under_test = BotUnderTest(
        with_ops(settings, breaker_failures=1, breaker_probe_s=300), emulator
    )
    await under_test.start()
    yield under_test
    await under_test.stop()


async def test_healthz_is_ok_and_the_counters_move_when_a_memory_is_saved(
    ops_bot: BotUnderTest,
) -> None:
    settings = ops_bot.settings
    assert await healthz(settings) == (200, {"status": "ok"})
    before = await scrape(settings)
    replies = await ops_bot.say(USER, "my passport is in the blue drawer")
    assert "Saved" in (replies[0].text or "")
    await ops_bot.settled()
    after = await scrape(settings)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("memorybot_updates_received_total") == 1
    assert moved("memorybot_updates_processed_total") == 1
    assert moved("memorybot_updates_parked_total") == 0
    assert moved("memorybot_update_processing_seconds_count") == 1
    assert moved("memorybot_transactions_total", outcome="committed") >= 2  # inbox + save
    assert moved("memorybot_transactions_total", outcome="compensated") == 0
    assert moved("memorybot_encode_seconds_count") >= 1
    assert moved("memorybot_vector_write_seconds_count") >= 1
    assert value(after, "memorybot_inbox_pending") == 0
    assert value(after, "memorybot_inbox_oldest_age_seconds") == 0
    assert ("memorybot_breaker_open", (("store", "sql"),)) in after
    assert value(after, "memorybot_breaker_open", store="vectors") == 0


async def test_an_open_breaker_makes_healthz_fail_with_the_reason(
    ops_bot: BotUnderTest,
) -> None:
    settings = ops_bot.settings
    before = await scrape(settings)
    ops_bot.engine.stores.faults.fail(Step.VECTOR_WRITE, times=1000)
    ops_bot.emulator.user_message(USER, "the umbrella is in the garage")
    body = await health_becomes(settings, 503)
    assert body["status"] == "unavailable"
    assert [r for r in body["reasons"] if r.startswith("breaker vectors open")], body
    after = await scrape(settings)
    assert value(after, "memorybot_breaker_open", store="vectors") == 1
    assert value(after, "memorybot_breaker_open", store="sql") == 0
    opened = ("memorybot_breaker_opened_total", {"store": "vectors"})
    assert value(after, opened[0], **opened[1]) - value(before, opened[0], **opened[1]) == 1
    undone = sum(
        value(after, "memorybot_transactions_total", outcome=o)
        - value(before, "memorybot_transactions_total", outcome=o)
        for o in ("rolled_back", "compensated")
    )
    assert undone >= 1
    assert value(after, "memorybot_inbox_pending") == 1  # the update waits, it is not lost


@pytest.fixture
async def chroma(tmp_path: Path) -> AsyncIterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server")
    server.path.mkdir()
    await server.start()
    yield server
    await server.stop()


async def test_healthz_follows_a_chroma_server_going_away_and_coming_back(
    settings: Settings, emulator: BotApiEmulator, chroma: ChromaServer
) -> None:
    settings = with_ops(settings, chroma_url=chroma.url, breaker_probe_s=0.5)
    async with running_bot(
        settings, token=emulator.token, base_url=emulator.base_url, background=False
    ):
        assert await healthz(settings) == (200, {"status": "ok"})
        await chroma.kill()
        body = await health_becomes(settings, 503)
        assert [r for r in body["reasons"] if r.startswith("vectors: ")], body
        assert not [r for r in body["reasons"] if r.startswith("sql")], body
        await chroma.start()
        assert await health_becomes(settings, 200) == {"status": "ok"}


async def _set_connections(database: str, allowed: bool) -> None:
    """Let the test's database accept connections or not (and cut the ones it has)."""
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(
            f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}'
        )
        if not allowed:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
    finally:
        await connection.close()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_healthz_follows_postgresql_refusing_connections(
    settings: Settings, emulator: BotApiEmulator, pg_database: str
) -> None:
    """PostgreSQL only: a SQLite file cannot stop answering while the process runs."""
    settings = with_ops(settings, breaker_probe_s=0.5)
    async with running_bot(
        settings, token=emulator.token, base_url=emulator.base_url, background=False
    ):
        assert await healthz(settings) == (200, {"status": "ok"})
        assert "memorybot_inbox_pending" in {name for name, _ in await scrape(settings)}
        await _set_connections(pg_database, allowed=False)
        try:
            body = await health_becomes(settings, 503)
            assert [r for r in body["reasons"] if r.startswith("sql: ")], body
            down = await scrape(settings)  # still served, without numbers SQL cannot give
            assert "memorybot_inbox_pending" not in {name for name, _ in down}
            assert ("memorybot_breaker_open", (("store", "sql"),)) in down
        finally:
            await _set_connections(pg_database, allowed=True)
        assert await health_becomes(settings, 200) == {"status": "ok"}
        assert value(await scrape(settings), "memorybot_inbox_pending") == 0


def update(update_id: int, text: str) -> dict[str, object]:
    chat = {"id": USER, "type": "private", "first_name": "Ops"}
    user = {"id": USER, "is_bot": False, "first_name": "Ops"}
    message = {"message_id": update_id, "date": 1_700_000_000, "chat": chat, "from": user}
    return {"update_id": update_id, "message": {**message, "text": text}}


async def test_webhook_mode_serves_the_endpoint_and_counts_received_updates(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    settings = with_ops(settings)
    secret = "ops-secret"
    async with running_bot(
        settings, token=emulator.token, base_url=emulator.base_url, background=False
    ) as runtime:
        server = TestServer(webhook_app(runtime, secret), host="127.0.0.1")
        await server.start_server()
        try:
            before = await scrape(settings)
            url = str(server.make_url("/telegram"))
            async with aiohttp.ClientSession(headers={SECRET_HEADER: secret}) as http:
                for _ in range(2):  # the second is Telegram redelivering it
                    async with http.post(
                        url, data=json.dumps(update(7, "the ring is in the jar"))
                    ) as r:
                        assert r.status == 200
            await emulator.wait_for(chat_id=USER, count=1)
            await _settled(runtime)
            after = await scrape(settings)
        finally:
            await server.close()
    name = "memorybot_updates_received_total"
    assert value(after, name) - value(before, name) == 1
    processed = "memorybot_updates_processed_total"
    assert value(after, processed) - value(before, processed) == 1


async def _settled(runtime: BotRuntime) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while (await runtime.inbox.depth())[0] or runtime.worker.busy:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("updates still waiting")
        await asyncio.sleep(0.05)


async def test_state_gauges_show_reminders_broadcast_progress_and_sweep_drift(
    settings: Settings, emulator: BotApiEmulator
) -> None:
    """Without background workers nothing is sent, so what SQL holds stays put."""
    settings = with_ops(settings)
    other = USER + 1
    async with running_bot(
        settings, token=emulator.token, base_url=emulator.base_url, background=False
    ) as runtime:
        intake = polling_intake(runtime, poll_timeout_s=1)
        polling = asyncio.create_task(intake.run())
        try:
            for user, text in ((USER, "the bike lock code is 4812"), (other, "milk, eggs")):
                emulator.user_message(user, text)
                await emulator.wait_for(chat_id=user, count=1)
            emulator.user_message(USER, "/remind tomorrow 9:00 call the dentist")
            await emulator.wait_for(chat_id=USER, count=2)
            await _settled(runtime)
        finally:
            intake.stop()
            await polling
        engine = runtime.engine
        [vector] = await engine.stores.vectors.scan(space_id=other)
        await engine.stores.vectors.delete([vector.ref])  # drift for the sweep to find
        overdue = Schedule(datetime.now(UTC) - timedelta(minutes=1), "water the plants")
        await engine.reminders.create(
            space_id=other, user_id=other, schedule=overdue, timezone="UTC"
        )
        recipients = await engine.broadcasts.recipients()
        await engine.broadcasts.create(author_id=USER, text="maintenance tonight")
        assert (await sweep(engine, grace_s=0)).ran
        samples = await scrape(settings)
    family = {name: 0.0 for name, _ in samples}
    for (name, _), number in samples.items():
        family[name] += number
    assert recipients == 2
    assert family["memorybot_reminders"] == 2
    assert value(samples, "memorybot_reminders", status="scheduled") == 2
    assert value(samples, "memorybot_reminders_overdue") == 1
    assert family["memorybot_broadcasts"] == 1
    assert family["memorybot_broadcast_deliveries"] == recipients
    assert value(samples, "memorybot_sweep_drift", kind="reembedded") == 1
    assert value(samples, "memorybot_sweep_drift", kind="orphans_deleted") == 0
    assert samples[("memorybot_sweep_last_timestamp_seconds", ())] > 0
