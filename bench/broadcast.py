"""Broadcast delivery benchmark: `python -m bench.broadcast [--recipients 10000] [--quick]`.

Runs the real bot in-process against the local Bot API emulator (SQLite + embedded Chroma in a
temp dir) and measures: the sustained send rate with no cap, how close the default cap (25/s)
holds over a 30 s window, and the added p95 reply latency for a user chatting meanwhile.
Prints one JSON object and replaces its section in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from bot.runner import polling_intake, running_bot
from bot.services import KEY, BotServices
from botapi_emulator import BotApiEmulator
from engine.settings import Settings
from storage.models import UserRow

CHATTER = 777_000_001
SECTION = "## Broadcast (bench/broadcast.py)"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def probe(emulator: BotApiEmulator, samples: int, pause_s: float) -> list[float]:
    """Send /help as the chatting user and time each reply."""
    latencies = []
    for _ in range(samples):
        before = len(emulator.sent(CHATTER))
        started = time.perf_counter()
        emulator.user_message(CHATTER, "/help")
        await emulator.wait_for(chat_id=CHATTER, count=before + 1, timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(pause_s)
    return latencies


def max_in_any_second(times: list[float]) -> int:
    """The most sends inside any sliding one-second window (recipients only)."""
    ordered, best, first = sorted(times), 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


def send_times(emulator: BotApiEmulator, since: float) -> list[float]:
    return [
        at
        for at, method, params in emulator.calls
        if method.lower() == "sendmessage"
        and at >= since
        and str(params.get("chat_id")) != str(CHATTER)
    ]


async def run_case(
    workdir: Path, recipients: int, rate: float, window_s: float | None, samples: int
) -> dict[str, Any]:
    emulator = BotApiEmulator()
    await emulator.start()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{workdir / f'b{int(rate)}.db'}",
        chroma_path=workdir / f"chroma{int(rate)}",
        telegram_max_rate=0,
        broadcast_rate=rate,
    )
    try:
        async with running_bot(settings, token=emulator.token, base_url=emulator.base_url) as proc:
            intake = polling_intake(proc, poll_timeout_s=1)
            polling = asyncio.create_task(intake.run())
            services: BotServices = proc.app.bot_data[KEY]
            engine = services.engine
            async with engine.stores.db.writes() as session:
                session.add_all(UserRow(id=10_000_000 + i, role="user") for i in range(recipients))
                await session.commit()
            await engine.users.register(user_id=CHATTER)
            idle = await probe(emulator, samples, 0.1)
            started = time.monotonic()
            broadcast = await engine.broadcasts.create(author_id=CHATTER, text="bench broadcast")
            services.wake_broadcasts()
            busy = await probe(emulator, samples, 0.2)
            while True:
                progress = await engine.broadcasts.progress(broadcast)
                assert progress is not None
                elapsed = time.monotonic() - started
                if progress.status != "sending" or (window_s and elapsed >= window_s):
                    break
                await asyncio.sleep(0.5)
            if progress.status == "sending":
                await engine.broadcasts.cancel(broadcast_id=broadcast, actor_id=CHATTER)
                services.wake_broadcasts()
            times = send_times(emulator, started)
            span = (max(times) - min(times)) if len(times) > 1 else 0.0
            per_window = max_in_any_second(times)
            intake.stop()
            await polling
    finally:
        await emulator.stop()
    return {
        "rate_cap": rate,
        "sent": len(times),
        "per_s": round((len(times) - 1) / span, 1) if span else 0.0,
        "max_in_one_second": per_window,
        "idle_reply_p95_ms": round(pct(idle, 0.95), 1),
        "busy_reply_p95_ms": round(pct(busy, 0.95), 1),
        "added_p95_ms": round(pct(busy, 0.95) - pct(idle, 0.95), 1),
        "busy_reply_p50_ms": round(statistics.median(busy), 1),
    }


def write_section(out: Path, result: dict[str, Any], argv: list[str]) -> None:
    uncapped, capped = result["uncapped"], result["capped"]
    cap_ok = "yes" if capped["max_in_one_second"] <= 25 else "no"
    rows = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f" on {os.cpu_count()} cores, Python {sys.version.split()[0]}:"
        f" `python -m bench.broadcast {' '.join(argv)}`",
        "",
        "| metric | measured | target | met? |",
        "|---|---|---|---|",
        f"| sustained send rate, no cap ({uncapped['sent']} recipients) |"
        f" {uncapped['per_s']}/s | as high as it goes | — |",
        f"| send rate with the default cap | {capped['per_s']}/s | ≈ 25/s | {cap_ok} |",
        f"| most sends in any one second (cap 25) | {capped['max_in_one_second']} | ≤ 25 |"
        f" {cap_ok} |",
        f"| reply p95 idle / during broadcast (cap 25) | {capped['idle_reply_p95_ms']} ms /"
        f" {capped['busy_reply_p95_ms']} ms | small | added {capped['added_p95_ms']} ms |",
        f"| reply p95 during the uncapped broadcast | {uncapped['busy_reply_p95_ms']} ms"
        f" (added {uncapped['added_p95_ms']} ms) | — | — |",
        "",
    ]
    body = "\n".join(rows)
    text = out.read_text() if out.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip() + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body + (text[end + 1 :] if end != -1 else "")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="300 recipients, short window")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    recipients = 300 if args.quick else args.recipients
    with tempfile.TemporaryDirectory() as tmp:
        uncapped = await run_case(Path(tmp), recipients, 0, None, 10 if args.quick else 30)
        capped = await run_case(
            Path(tmp), recipients, 25, 8 if args.quick else 30, 10 if args.quick else 30
        )
    result = {"recipients": recipients, "uncapped": uncapped, "capped": capped}
    print(json.dumps(result))
    with contextlib.suppress(OSError):
        write_section(args.out, result, sys.argv[1:])


if __name__ == "__main__":
    asyncio.run(main())
