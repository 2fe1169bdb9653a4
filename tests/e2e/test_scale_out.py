"""Scale-out on loopback: two webhook workers share one inbox, one survives the other's SIGKILL.

PostgreSQL only, on purpose: several processes sharing one store is what PostgreSQL is for
here (the inbox's per-chat leases use `FOR UPDATE SKIP LOCKED`, the jobs' leadership is a
PostgreSQL lock); a SQLite file and an embedded Chroma folder belong to one process.

Real parts: a fresh PostgreSQL database, one `chroma run` server, two `memorybot run --webhook`
processes on their own ports with the real model, the Bot API emulator. The test is Telegram
and the load balancer: it POSTs 300 updates (44 private chats, 2 groups) to the workers'
/telegram with the secret, a random worker first and the other when one fails; a chat's next
update goes once its previous one was accepted, and often to the other worker. Midway one
worker is SIGKILLed; the other takes all the traffic; then the killed one is started again.

What a SIGKILL may leave (the project's guarantee, as in test_crash.py): updates the dead
worker had leased are processed again once its 30 s lease runs out, so a reply it had sent
before its inbox row was marked done is sent again — at least once, never lost. The test
allows exactly that: a second copy of a reply only when the first came before the kill and
the second after it, and only for an update the dead worker held (leased) when it was killed.
Vectors written by a save the kill interrupted before its commit are orphans; the leader's
sweep (short interval and grace here) deletes them, so `memorybot check` must then be clean
without a repair. The jobs: each worker notes when its sweep and expiry work ran (see
tests/e2e/worker_kit.py); no two processes may have run the same job at overlapping times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from botapi_emulator import BotApiEmulator
from engine.settings import Settings
from engine.stores import upgrade_database
from tests.e2e.loopback import free_port, fresh_pg_database
from tests.e2e.traffic import (
    Balancer,
    Replies,
    answered,
    drained,
    memory_sources,
    plan_traffic,
    sql,
)
from tests.e2e.worker_kit import Fleet, Worker, overlapping

pytestmark = pytest.mark.slow

USERS = [820_001 + i for i in range(44)]
# 18 updates per group: a group's replies stay under its 20 a minute (bot.limiter)
GROUPS = {-1_001_820_000_001: USERS[:6], -1_001_820_000_002: USERS[6:12]}
SECRET = "scale-out-secret"
RATE = 12.0  # updates per second the balancer sends
SWEEP_GRACE_S = 2
JOB_ENV = {"SWEEP_INTERVAL_S": "2", "EXPIRY_INTERVAL_S": "2", "SWEEP_GRACE_S": str(SWEEP_GRACE_S)}
DRAIN_TIMEOUT_S = 150.0
SEND_DELAY_S = 0.05  # each reply takes this long: a worker holds its leases a while
SETTLE_S = 0.5  # replies the killed worker had fully sent are recorded within this


@contextlib.contextmanager
def logs_on_failure(fleet: Fleet) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(fleet.dump())
        raise


async def wait_for(condition: Callable[[], bool], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


def check_chat(
    chat: int, got: list[tuple[int, float]], wanted: list[int], kill: float
) -> list[int]:
    """One chat: every update answered, in order, a reply repeated only across the kill;
    returns the plan indices answered twice."""
    seen = [index for index, _ in got]
    assert sorted(set(seen)) == wanted, f"chat {chat}: unanswered {set(wanted) - set(seen)}"
    first = list(dict.fromkeys(seen))
    assert first == wanted, f"chat {chat}: replies out of order: {seen}"
    for part in ([i for i, at in got if at < kill], [i for i, at in got if at >= kill]):
        assert part == sorted(set(part)), f"chat {chat}: repeated or reordered: {seen}"
    return [index for index, count in Counter(seen).items() if count > 1]


async def leased_by(database_url: str, owner: str) -> set[int]:
    """Pending updates whose lease `owner` holds."""
    query = "SELECT update_id FROM inbox WHERE status = 'pending' AND owner = $1"
    rows = await sql(database_url, query, owner)
    return {int(row[0]) for row in rows}


async def test_two_webhook_workers_share_the_inbox_and_survive_a_sigkill(
    emulator: BotApiEmulator,
    chroma_server: str,
    real_encode: Callable[[list[str]], np.ndarray],
    tmp_path: Path,
) -> None:
    real_encode(["warm up"])  # the ONNX export exists before two workers load the model
    async with fresh_pg_database() as url:
        env = {
            "DATABASE_URL": url,
            "CHROMA_URL": chroma_server,
            "CHROMA_COLLECTION": f"scale{uuid.uuid4().hex[:8]}",
            "TELEGRAM_BOT_TOKEN": emulator.token,
            "TELEGRAM_API_BASE_URL": emulator.base_url,
            "WEBHOOK_URL": "https://bot.example.org/telegram",
            "TELEGRAM_MAX_RATE": "0",
            **JOB_ENV,
        }
        fleet = Fleet(tmp_path, env, SECRET)
        try:
            with logs_on_failure(fleet):
                await run_scenario(fleet, emulator, url)
        finally:
            await fleet.cleanup()


async def kill_while_busy(fleet: Fleet, worker: Worker, url: str) -> set[int]:
    """SIGKILL `worker` while it holds leased updates; returns the ones it held."""
    owner, deadline = fleet.owner(worker), time.monotonic() + 30
    while len(await leased_by(url, owner)) < 2:
        assert time.monotonic() < deadline, f"worker {worker.name} never held two updates"
        await asyncio.sleep(0.02)
    await fleet.kill(worker)
    stranded = await leased_by(url, owner)
    assert stranded, "the kill landed when the worker held no lease"
    return stranded


async def run_scenario(fleet: Fleet, emulator: BotApiEmulator, url: str) -> None:
    began, marks = time.monotonic(), dict[str, float]()
    await upgrade_database(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    a, b = Worker("a", free_port()), Worker("b", free_port())
    await asyncio.gather(fleet.start(a), fleet.start(b))
    marks["booted"] = time.monotonic() - began
    plan = plan_traffic(emulator, users=USERS, groups=GROUPS, per_user=6, per_group=3)
    half, three_quarters = len(plan) // 2, 3 * len(plan) // 4
    replies = Replies(emulator)
    emulator.slow("sendMessage", delay=SEND_DELAY_S, times=10 * len(plan))
    balancer = Balancer([a.url, b.url], SECRET)

    # 1. Both workers take the traffic; a is killed while it holds work, b takes the rest.
    sending = asyncio.create_task(balancer.run(plan[:half], rate=RATE))
    await wait_for(lambda: balancer.accepted >= 0.35 * len(plan), 60, "35% accepted")
    assert replies.seen, "nothing was answered before the kill"
    stranded = await kill_while_busy(fleet, a, url)
    await asyncio.sleep(SETTLE_S)
    kill = time.monotonic()
    marks["killed"] = kill - began
    answered_at_kill = len(replies.seen)
    await sending
    # 2. a starts again (same port) while b takes the traffic alone; 3. both again.
    sending = asyncio.create_task(balancer.run(plan[half:three_quarters], rate=RATE))
    await fleet.start(a)
    await sending
    assert balancer.outcomes["worker0:down"] > 0, "the balancer never met the dead worker"
    accepted_by_a = balancer.outcomes["worker0:200"]
    await balancer.run(plan[three_quarters:], rate=RATE)
    assert balancer.outcomes["worker0:200"] > accepted_by_a, "a took no traffic after restart"
    marks["sent"] = time.monotonic() - began

    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while not await drained(url, plan, replies):
        assert time.monotonic() < deadline, "the inbox was not drained in time"
        await asyncio.sleep(0.5)
    drained_at = time.time()
    marks["drained"] = time.monotonic() - began

    sources = await memory_sources(url)
    chats, stray = answered(plan, replies, sources)
    assert stray == [], f"replies that answer no update: {[m.text for m in stray][:5]}"
    resent: list[int] = []
    for chat, got in chats.items():
        wanted = [p.index for p in plan if p.chat_id == chat]
        resent += check_chat(chat, got, wanted, kill)
    again = {plan[i].update["update_id"] for i in resent}
    assert again <= stranded, f"answered twice, not held by the killed worker: {again - stranded}"
    saves = {(p.chat_id, p.message_id) for p in plan if p.kind != "recall"}
    rows = await sql(url, "SELECT chat_id, message_id FROM memories")
    assert Counter(map(tuple, rows)) == Counter(saves), "a memory lost or duplicated"
    statuses = await sql(url, "SELECT status, count(*) FROM inbox GROUP BY status")
    assert dict(map(tuple, statuses)) == {"done": len(plan)}
    assert await sql(url, "SELECT * FROM dead_letters") == []

    # The jobs: one process at a time per job; a sweep after the traffic cleans the orphans.
    await wait_for(
        lambda: any(
            r.job == "sweep" and r.start > drained_at + SWEEP_GRACE_S for r in fleet.job_runs()
        ),
        30,
        "a sweep after the drain",
    )
    assert await fleet.terminate(a) == 0
    assert await fleet.terminate(b) == 0
    runs = fleet.job_runs()
    assert {r.job for r in runs} == {"sweep", "expire"}
    assert overlapping(runs) == [], "two workers ran the same job at the same time"
    code, output = await fleet.cli("check")
    assert code == 0, output
    assert "ok: SQL and Chroma agree" in output
    per_process = Counter((r.pid, r.job) for r in runs)
    print(
        f"answered {len(plan)} updates; {answered_at_kill} replies before the kill; "
        f"{len(stranded)} updates held by the killed worker, {len(resent)} of them answered "
        f"again after it; balancer {dict(balancer.outcomes)}; "
        f"job runs per process {dict(per_process)}; seconds {marks}"
    )
