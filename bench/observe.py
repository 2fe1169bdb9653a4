"""What a bench reads off the bot process around a phase: CPU seconds (per thread too) from
/proc, and the bot's own counters (SQL commits and COUNTs, transactions) from its /metrics.

    before = await Snapshot.take(pid, port)
    ... the phase ...
    spent = (await Snapshot.take(pid, port)) - before
"""

from __future__ import annotations

import os
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
COUNTERS = {
    "commits": "memorybot_sql_commits_total",
    "counts": 'memorybot_sql_statements_total{kind="count"}',
    "statements_other": 'memorybot_sql_statements_total{kind="other"}',
    "units_committed": 'memorybot_transactions_total{outcome="committed"}',
    "lag_samples": "memorybot_event_loop_lag_seconds_count",
}
LAG_BUCKET = "memorybot_event_loop_lag_seconds_bucket"  # cumulative counts by le="..."


def free_port() -> int:
    """A TCP port nothing listens on right now (for the bot's METRICS_PORT)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _cpu_of(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime + stime


def process_cpu(pid: int) -> float:
    """CPU seconds the process has used (all its threads)."""
    return _cpu_of(Path(f"/proc/{pid}/stat").read_text())


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by thread: "loop" (the main thread: the event loop), "py" (every other
    Python thread: aiosqlite, encoder, Chroma calls), and native threads by name ("tokio-rt-
    worker": Chroma's Rust runtime, "sqlx-sqlite-wor": its SQLite), numbers stripped."""
    found: dict[str, float] = defaultdict(float)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            cpu = _cpu_of((task / "stat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        if task.name == str(pid):
            name = "loop"
        elif name.startswith("python"):
            name = "py"
        found[name.rstrip("0123456789_-") or name] += cpu
    return dict(found)


async def scrape(port: int) -> dict[str, float]:
    """The bot's counters of COUNTERS, from its /metrics."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        values[name] = float(value) if name and not line.startswith("#") else 0.0
    found = {key: values.get(metric, 0.0) for key, metric in COUNTERS.items()}
    prefix = LAG_BUCKET + '{le="'
    for metric, count in values.items():
        if metric.startswith(prefix) and not metric.endswith('"+Inf"}'):
            found[f"lag_le_{metric[len(prefix) : -2]}"] = count
    return found


def lag_quantile(counters: dict[str, float], q: float) -> float | None:
    """The event loop's lag at quantile `q` over a phase, in ms, as the upper bound of its
    histogram bucket (None without samples; inf when beyond the last bucket)."""
    buckets = sorted(
        (float(key.removeprefix("lag_le_")), count)
        for key, count in counters.items()
        if key.startswith("lag_le_")
    )
    total = counters.get("lag_samples", 0.0)
    if not buckets or total <= 0:
        return None
    for bound, count in buckets:
        if count >= q * total:
            return round(bound * 1000, 1)
    return float("inf")


@dataclass
class Snapshot:
    """The bot process's CPU and counters at one moment (or, subtracted, over a phase)."""

    cpu_s: float
    threads: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)

    @classmethod
    async def take(cls, pid: int, port: int | None) -> Snapshot:
        cpu = process_cpu(pid)  # /proc reads do not block: no disk behind them
        counters = await scrape(port) if port is not None else {}
        return cls(cpu, thread_cpu(pid), counters)

    def __sub__(self, earlier: Snapshot) -> Snapshot:
        threads = {k: v - earlier.threads.get(k, 0.0) for k, v in self.threads.items()}
        counters = {k: v - earlier.counters.get(k, 0.0) for k, v in self.counters.items()}
        return Snapshot(self.cpu_s - earlier.cpu_s, threads, counters)

    def per(self, messages: int) -> dict[str, float]:
        """CPU ms, commits and COUNTs per message, and the busiest threads' CPU seconds."""
        n = max(messages, 1)
        figures = {
            "cpu_ms_per_msg": round(self.cpu_s * 1000 / n, 2),
            "commits_per_msg": round(self.counters.get("commits", 0.0) / n, 3),
            "counts_per_msg": round(self.counters.get("counts", 0.0) / n, 3),
            "statements_per_msg": round(
                (self.counters.get("statements_other", 0.0) + self.counters.get("counts", 0.0))
                / n,
                2,
            ),
        }
        for name, q in (("loop_lag_p50_ms", 0.5), ("loop_lag_p95_ms", 0.95)):
            lag = lag_quantile(self.counters, q)
            if lag is not None:
                figures[name] = lag
        busiest = sorted(self.threads.items(), key=lambda kv: -kv[1])[:6]
        figures |= {f"cpu_s_thread_{name}": round(sec, 2) for name, sec in busiest if sec > 0}
        return figures
