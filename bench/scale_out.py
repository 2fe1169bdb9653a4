"""Webhook throughput, one worker against two: `python -m bench.scale_out [--quick]`.

The setup of tests/e2e/test_scale_out.py without the kill: PostgreSQL (a fresh database per
run), one `chroma run` server, N `memorybot run --webhook` processes with the real model, the
Bot API emulator in this process. The same plan of updates (private chats: /save, plain text,
/recall; two groups: /save, /recall) is POSTed as fast as the workers accept it, a random
worker first and the other if one fails, a chat's updates one after another. Measured: updates
per second from the first POST until every update is answered and the inbox is empty, and the
latency of each update from its POST to its reply (under a burst, mostly time in the queue).
Everything (workers, Chroma, PostgreSQL, this driver) shares the machine's CPUs. Prints one
JSON object and replaces its section in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import mean
from typing import Any

import psutil

from bench.common import (
    Log,
    Row,
    Section,
    command_line,
    load_average,
    parser_for,
    rate,
    replace_section,
    setup_process,
    spread,
    warn_if_busy,
)

setup_process()

from botapi_emulator import BotApiEmulator  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.stores import upgrade_database  # noqa: E402
from tests.e2e.loopback import chroma_server, free_port, fresh_pg_database  # noqa: E402
from tests.e2e.traffic import (  # noqa: E402
    Balancer,
    Replies,
    answered,
    drained,
    memory_sources,
    plan_traffic,
)
from tests.e2e.worker_kit import Fleet, Worker  # noqa: E402

log = Log("scale_out")
TITLE = "Scale-out: webhook workers (bench/scale_out.py)"
SECRET = "bench-secret"
DRAIN_TIMEOUT_S = 600.0
MODELS = Path("data/models").resolve()


def traffic_shape(chats: int) -> dict[str, Any]:
    """`chats` private chats, 6 updates each; 2 groups, 18 each (under 20 replies a minute)."""
    users = [830_001 + i for i in range(max(chats, 12))]
    groups = {-1_001_830_000_001: users[:6], -1_001_830_000_002: users[6:12]}
    return {"users": users, "groups": groups, "per_user": 6, "per_group": 3}


async def measure(
    workers: int, chroma_url: str, chats: int, work: Path, round_no: int
) -> dict[str, Any]:
    """One run: `workers` processes, the plan sent as fast as accepted, until drained."""
    emulator = BotApiEmulator()
    await emulator.start()
    try:
        async with fresh_pg_database("bench") as url:
            await upgrade_database(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
            env = {
                "DATABASE_URL": url,
                "CHROMA_URL": chroma_url,
                "CHROMA_COLLECTION": f"bench{uuid.uuid4().hex[:8]}",
                "TELEGRAM_BOT_TOKEN": emulator.token,
                "TELEGRAM_API_BASE_URL": emulator.base_url,
                "WEBHOOK_URL": "https://bot.example.org/telegram",
                "TELEGRAM_MAX_RATE": "0",
                "MODEL_CACHE_PATH": str(MODELS),
                "LOG_LEVEL": "WARNING",
            }
            folder = work / f"round{round_no}-workers{workers}"
            folder.mkdir()
            fleet = Fleet(folder, env, SECRET)
            pool = [Worker(f"w{i}", free_port()) for i in range(workers)]
            try:
                await asyncio.gather(*(fleet.start(worker) for worker in pool))
                plan = plan_traffic(emulator, **traffic_shape(chats))
                replies = Replies(emulator)
                balancer = Balancer([w.url for w in pool], SECRET, concurrency=32)
                log(f"{workers} worker(s) up; sending {len(plan)} updates")
                load_before = load_average()[0]
                procs = [psutil.Process(w.process.pid) for w in pool if w.process is not None]
                cpu_before = sum(sum(p.cpu_times()[:2]) for p in procs)
                psutil.cpu_percent()  # the machine's busy share from here on
                await balancer.run(plan)
                deadline = time.monotonic() + DRAIN_TIMEOUT_S
                while not await drained(url, plan, replies):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the inbox was not drained in time")
                    await asyncio.sleep(0.2)
                machine_busy = psutil.cpu_percent()
                worker_cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu_before
                by_chat, stray = answered(plan, replies, await memory_sources(url))
                for worker in pool:
                    await fleet.terminate(worker)
            finally:
                await fleet.cleanup()
    finally:
        await emulator.stop()
    first_reply = {index: at for got in by_chat.values() for index, at in reversed(got)}
    begin = min(balancer.first_post.values())
    seconds = max(first_reply.values()) - begin
    latency = [(first_reply[i] - balancer.first_post[i]) * 1000 for i in first_reply]
    result = {
        "workers": workers,
        "updates": len(plan),
        "chats": chats,
        "seconds": round(seconds, 2),
        "updates_per_s": rate(len(plan), seconds),
        "latency_ms": spread(latency),
        "stray_replies": len(stray),
        "worker_cpu_per_s": round(worker_cpu / seconds, 2),
        "machine_busy_percent": machine_busy,
        "load_before": round(load_before, 2),
        "load_after": round(load_average()[0], 2),
    }
    log(json.dumps(result))
    return result


def section(results: list[dict[str, Any]], argv: list[str]) -> Section:
    by = {n: [r for r in results if r["workers"] == n] for n in (1, 2)}
    means = {n: mean(r["updates_per_s"] for r in runs) for n, runs in by.items()}
    gain = means[2] / means[1] if means[1] else 0.0
    rows: list[Row] = []
    for n, runs in by.items():
        name = f"{n} worker{'s' * (n > 1)}"
        each = ", ".join(f"{r['updates_per_s']:.1f}" for r in runs)
        rows.append(Row(f"{name}: updates/s until drained (each round)", f"{each}"))
        latency = ", ".join(
            f"{r['latency_ms']['p50'] / 1000:.1f} / {r['latency_ms']['p95'] / 1000:.1f}"
            for r in runs
        )
        rows.append(Row(f"{name}: POST → reply p50 / p95 (each round)", f"{latency} s"))
        cpu = ", ".join(
            f"{r['worker_cpu_per_s']:.2f} ({r['machine_busy_percent']:.0f}%)" for r in runs
        )
        rows.append(Row(f"{name}: CPUs used by the workers (machine busy)", cpu))
    rows.append(Row("two workers against one (mean updates/s)", f"× {gain:.2f}", "> 1", gain > 1))
    loads = ", ".join(f"{r['load_before']:.1f} → {r['load_after']:.1f}" for r in results)
    first = results[0]
    return Section(
        title=TITLE,
        command=command_line("bench.scale_out", argv),
        facts=[
            "PostgreSQL (fresh database per run), one `chroma run` server, `memorybot run "
            "--webhook` workers with the real model (ONNX), the Bot API emulator in the driver; "
            "TELEGRAM_MAX_RATE=0 (no send limit: processing is what is measured)",
            f"{first['updates']} updates from {first['chats']} private "
            "chats (6 each) and 2 groups (18 each, under a group's 20 replies a minute): /save, "
            "plain text, /recall; POSTed as fast as accepted (32 in flight, a chat's in "
            "order), a random worker first; rounds alternate 1, 2, 1, 2 workers",
            "updates/s: first POST → last first reply (inbox empty); latency: an update's "
            "first POST → its reply, under a burst mostly time in the queue",
            f"1-minute load average before → after each run: {loads} (other work included)",
            "CPUs used: the workers' CPU seconds per second of the run; machine busy: all "
            "processes, of both CPUs. One worker is bound by its own process (one event loop "
            "and the model: about one CPU); two workers are bound by the machine, whose two "
            "CPUs they share with Chroma, PostgreSQL, the driver and other work. This measures "
            "one 2-CPU box; workers on separate machines were not measured",
        ],
        rows=rows,
    )


async def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="1-then-2-worker rounds")
    parser.add_argument("--chats", type=int, default=120, help="private chats")
    args = parser.parse_args()
    warn_if_busy(log)
    os.environ.setdefault("MODEL_CACHE_PATH", str(MODELS))
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp, chroma_server(Path(tmp) / "chroma") as chroma:
        results = [
            await measure(n, chroma, 12 if args.quick else args.chats, Path(tmp), i)
            for i in range(rounds)
            for n in (1, 2)
        ]
    print(json.dumps(results))
    if not args.quick:
        replace_section(args.out, section(results, sys.argv[1:]))


if __name__ == "__main__":
    asyncio.run(main())
