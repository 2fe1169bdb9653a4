"""Shared helpers of the bench scripts: timing, percentiles, scratch databases, the docs section.

Every bench script prints one JSON object on stdout, logs progress on stderr and replaces its
own `## ...` section of docs/benchmarks.md (other sections are kept as they are).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shlex
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import numpy as np
import psutil

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
DEFAULT_OUT = Path("docs/benchmarks.md")
Encode = Callable[[list[str]], np.ndarray]


# ---- process setup and logging ---------------------------------------------------------------
def offline_env() -> dict[str, str]:
    """The environment every bench process (and the bot subprocess) runs with: no network."""
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }


def setup_process() -> None:
    """Offline model loading and no telemetry for this process (explicit settings win)."""
    for key, value in offline_env().items():
        os.environ.setdefault(key, value)


class Log:
    """Timestamped progress lines on stderr (stdout is reserved for the JSON result)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[{self.name} {stamp}] {message}", file=sys.stderr, flush=True)


# ---- measuring -------------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank, rounded to 0.01; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def spread(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and max of `values` (ms), each rounded to 0.01; NaN for no values."""
    return {
        "p50": pct(values, 0.5),
        "p95": pct(values, 0.95),
        "max": round(max(values), 2) if values else float("nan"),
    }


def rate(count: int, seconds: float) -> float:
    """count / seconds, rounded to 0.1 (0 for an empty interval)."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def encode_rate(encode: Encode, texts: list[str]) -> float:
    """Texts per second of one blocking batched `encode` call (warm the model up first)."""
    start = time.perf_counter()
    encode(texts)
    return len(texts) / (time.perf_counter() - start)


def rss_mb() -> float:
    """Resident memory of this process in MiB."""
    return round(float(psutil.Process().memory_info().rss) / 2**20, 1)


# ---- machine ---------------------------------------------------------------------------------
def nproc() -> int:
    """CPUs this process may run on (what `nproc` prints)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def busy(threshold: float = 0.5) -> bool:
    """True when the 1-minute load average exceeds `threshold` times nproc."""
    return load_average()[0] > threshold * nproc()


def warn_if_busy(log: Log) -> None:
    """Say so on stderr when other processes are likely to skew the numbers."""
    if busy():
        log(
            f"warning: load average {load_average()[0]:.1f} on {nproc()} CPUs; "
            "other processes skew the numbers"
        )


def machine_line() -> str:
    loads = ", ".join(f"{x:.2f}" for x in load_average())
    return (
        f"{nproc()} CPUs (nproc), Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, load average at the end {loads}"
    )


# ---- scratch databases -----------------------------------------------------------------------
@contextlib.asynccontextmanager
async def scratch_database(kind: str, work: Path) -> AsyncIterator[str]:
    """A fresh database URL: a SQLite file in `work`, or a new PostgreSQL database dropped after.

    Args:
        kind: "sqlite" or "postgres" (database `bench_<random>` on the local server).
        work: a scratch folder for the SQLite file.
    """
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{work / 'bench.db'}"
        return
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield PG_URL.format(name=name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# ---- command line ----------------------------------------------------------------------------
def parser_for(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every bench script shares: --db, --quick, --out."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"markdown file whose section is replaced (default {DEFAULT_OUT})",
    )
    return parser


def command_line(module: str, argv: Sequence[str]) -> str:
    return shlex.join(["python", "-m", module, *argv])


# ---- the docs/benchmarks.md section ----------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One line of the results table; `met` None means informational (no target)."""

    metric: str
    measured: str
    target: str = "—"
    met: bool | None = None

    def markdown(self) -> str:
        verdict = "—" if self.met is None else ("yes" if self.met else "no")
        return f"| {self.metric} | {self.measured} | {self.target} | {verdict} |"


@dataclass(frozen=True)
class Section:
    """A bench script's section: a title, facts, the table and why missed targets were missed.

    `tables`: more markdown lines (e.g. a per-size table) printed after the targets table.
    """

    title: str
    command: str
    facts: Sequence[str]
    rows: Sequence[Row]
    why: Sequence[str] = ()
    tables: Sequence[str] = ()

    def markdown(self) -> str:
        lines = [
            f"## {self.title}",
            "",
            f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- machine: {machine_line()}",
            f"- command: `{self.command}`",
            *(f"- {fact}" for fact in self.facts),
            "",
            "| metric | measured | target | met? |",
            "| --- | --- | --- | --- |",
            *(row.markdown() for row in self.rows),
        ]
        if self.tables:
            lines += ["", *self.tables]
        if self.why:
            lines += ["", "Why targets are missed:", "", *(f"- {note}" for note in self.why)]
        return "\n".join(lines) + "\n"


def replace_section(path: Path, section: Section) -> None:
    """Write `section` into `path` in place of the section with the same title (else append)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(section.title)}[ \t]*\n.*?(?=^## |\Z)", re.M | re.S)
    body = section.markdown() + "\n"
    new, found = pattern.subn(lambda _: body, old, count=1)
    if not found:
        new = old.rstrip() + "\n\n" + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new.rstrip() + "\n")
