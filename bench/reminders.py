"""Reminder delivery lateness: `python -m bench.reminders [--db sqlite|postgres] [--quick]`.

Runs the real bot in-process against the local Bot API emulator with the default send limits
(TELEGRAM_MAX_RATE 30/s), 200 users, and two loads: 200 reminders spread over one minute, and
200 reminders all due in the same second. Lateness is the emulator's receive time minus the
due time. Also checks that none came early and each came exactly once. Prints one JSON
object and replaces its section in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    Log,
    Row,
    Section,
    busy,
    command_line,
    parser_for,
    replace_section,
    scratch_database,
    setup_process,
    spread,
    warn_if_busy,
)

setup_process()

from bot.runner import running_bot  # noqa: E402
from botapi_emulator import BotApiEmulator, SentMessage  # noqa: E402
from engine.app import MemoryEngine  # noqa: E402
from engine.schedule import Schedule  # noqa: E402
from engine.settings import Settings  # noqa: E402

log = Log("reminders")
FIRST_USER = 90_000_001
TITLE = "Reminders (bench/reminders.py)"


async def schedule(engine: MemoryEngine, dues: list[datetime], tag: str) -> dict[str, float]:
    """One reminder per user at `dues[i]`; returns due timestamps by reminder text."""
    due_by_text: dict[str, float] = {}
    for start in range(0, len(dues), 50):
        batch = list(enumerate(dues))[start : start + 50]
        await asyncio.gather(
            *(
                engine.reminders.create(
                    space_id=FIRST_USER + i,
                    user_id=FIRST_USER + i,
                    schedule=Schedule(due, f"{tag} reminder {i}"),
                    timezone="UTC",
                )
                for i, due in batch
            )
        )
        due_by_text.update({f"⏰ {tag} reminder {i}": due.timestamp() for i, due in batch})
    return due_by_text


async def run_load(
    engine: MemoryEngine, arrived: dict[str, list[float]], dues: list[datetime], tag: str
) -> dict[str, Any]:
    due_by_text = await schedule(engine, dues, tag)
    deadline = time.time() + (max(dues) - datetime.now(UTC)).total_seconds() + 120
    while sum(1 for text in due_by_text if text in arrived) < len(due_by_text):
        if time.time() > deadline:
            raise TimeoutError(f"{tag}: not every reminder arrived")
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)  # a duplicate would come within the worker's poll
    lateness = [(arrived[text][0] - due) * 1000 for text, due in due_by_text.items()]
    copies = Counter(len(arrived[text]) for text in due_by_text)
    return {
        "reminders": len(due_by_text),
        "lateness_ms": spread(lateness),
        "earliest_ms": round(min(lateness), 1),
        "copies": dict(copies),
    }


async def measure(db: str, count: int, spread_s: float) -> dict[str, Any]:
    emulator = BotApiEmulator()
    arrived: dict[str, list[float]] = {}
    record = emulator.record_sent

    def recording(message: SentMessage) -> None:
        arrived.setdefault(message.text or "", []).append(time.time())
        record(message)

    emulator.record_sent = recording  # type: ignore[method-assign]
    await emulator.start()
    with tempfile.TemporaryDirectory() as tmp:
        async with scratch_database(db, Path(tmp)) as url:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                database_url=url,
                chroma_path=Path(tmp) / "chroma",
                chroma_url=None,
            )
            try:
                async with running_bot(
                    settings, token=emulator.token, base_url=emulator.base_url
                ) as runtime:
                    engine = runtime.engine
                    users = [FIRST_USER + i for i in range(count)]
                    for start in range(0, count, 50):
                        await asyncio.gather(
                            *(engine.users.register(user_id=u) for u in users[start : start + 50])
                        )
                    log(f"{count} users registered; scheduling the spread load")
                    first = datetime.now(UTC) + timedelta(seconds=15)
                    step = spread_s / count
                    dues = [first + timedelta(seconds=i * step) for i in range(count)]
                    spread_load = await run_load(engine, arrived, dues, "spread")
                    log(f"spread: {spread_load}")
                    at = datetime.now(UTC) + timedelta(seconds=15)
                    burst = await run_load(engine, arrived, [at] * count, "burst")
                    log(f"burst: {burst}")
            finally:
                await emulator.stop()
    return {"db": db, "spread_over_s": spread_s, "spread": spread_load, "burst": burst}


def section(r: dict[str, Any], argv: list[str]) -> Section:
    s, b = r["spread"], r["burst"]
    once = s["copies"] == {1: s["reminders"]} and b["copies"] == {1: b["reminders"]}
    early = min(s["earliest_ms"], b["earliest_ms"])
    return Section(
        title=TITLE,
        command=command_line("bench.reminders", argv),
        facts=[
            f"database: {r['db']}; the real bot in-process against the Bot API emulator, "
            "default send limits (30 messages/s overall)",
            f"{s['reminders']} users, one reminder each; lateness = emulator receive time "
            "minus due time",
            *(["the machine was busy with other work meanwhile (pessimistic numbers)"] * busy()),
        ],
        rows=[
            Row(
                f"lateness p50 / p95 / max, {s['reminders']} due over {r['spread_over_s']:.0f} s",
                f"{s['lateness_ms']['p50']:.0f} / {s['lateness_ms']['p95']:.0f} / "
                f"{s['lateness_ms']['max']:.0f} ms",
                "p95 ≤ 5 s",
                s["lateness_ms"]["p95"] <= 5000,
            ),
            Row(
                f"lateness p50 / p95 / max, {b['reminders']} due in the same second",
                f"{b['lateness_ms']['p50']:.0f} / {b['lateness_ms']['p95']:.0f} / "
                f"{b['lateness_ms']['max']:.0f} ms",
                f"≈ {b['reminders']} / 30 per s",
            ),
            Row("earliest delivery relative to due", f"{early:.0f} ms", "≥ 0", early >= 0),
            Row("copies of each reminder", "exactly 1" if once else "not 1", "1", once),
        ],
    )


async def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--reminders", type=int, default=200)
    args = parser.parse_args()
    warn_if_busy(log)
    count = 40 if args.quick else args.reminders
    result = await measure(args.db, count, 10.0 if args.quick else 60.0)
    print(json.dumps(result))
    replace_section(args.out, section(result, sys.argv[1:]))


if __name__ == "__main__":
    asyncio.run(main())
