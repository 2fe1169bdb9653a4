"""Webhook workers as real processes (scale-out test and bench): start, kill, restart, CLI.

Each worker is `memorybot run --webhook` (`bot.cli.main`) on its own WEBHOOK_PORT; all share
one PostgreSQL database, one `chroma run` server and the Bot API emulator. The only addition:
a few lines wrap the work of the two periodic leader jobs (the sweep and expiry) so that each
run writes its process id, start and end to the worker's probe file, and note the worker's
inbox owner (its leases' name). From those a test tells which process ran which job when,
whatever the leadership mechanism is, and which inbox rows a killed worker held.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

BOOT_TIMEOUT_S = 120.0
EXIT_TIMEOUT_S = 40.0
CLI_TIMEOUT_S = 120.0
PROBED_WEBHOOK_RUN = """
import os, sys, time
from engine.index_care import IndexCare
from engine.inbox import Inbox
from engine.memory_writes import MemoryWrites

def note(*fields):
    with open(os.environ["SCALE_PROBE"], "a") as out:
        out.write(" ".join(map(str, (os.getpid(), *fields))) + "\\n")

def probe(cls, name, job):
    original = getattr(cls, name)

    async def probed(self, *args, **kwargs):
        start = time.time()
        try:
            return await original(self, *args, **kwargs)
        finally:
            note("job", job, f"{start:.6f}", f"{time.time():.6f}")

    setattr(cls, name, probed)

probe(IndexCare, "sweep", "sweep")
probe(MemoryWrites, "expire_due", "expire")
_init = Inbox.__init__

def init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    note("owner", self.owner)

Inbox.__init__ = init
from bot.cli import main
sys.exit(main(["run", "--webhook"]))
"""


@dataclass(frozen=True)
class JobRun:
    """One probed run of a job's work: which process, when (time.time())."""

    pid: int
    job: str
    start: float
    end: float


def overlapping(runs: list[JobRun]) -> list[tuple[JobRun, JobRun]]:
    """Pairs of runs of the same job by different processes that overlap in time."""
    ordered = sorted(runs, key=lambda r: (r.job, r.start))
    return [
        (a, b)
        for i, a in enumerate(ordered)
        for b in ordered[i + 1 :]
        if a.job == b.job and a.pid != b.pid and b.start < a.end
    ]


@dataclass
class Worker:
    """One webhook worker slot: a fixed port (as in a load balancer's pool), a process."""

    name: str
    port: int
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/telegram"


class Fleet:
    """Starts webhook workers and CLI commands with one shared environment."""

    def __init__(self, workdir: Path, env: Mapping[str, str], secret: str) -> None:
        self.workdir = workdir
        self.secret = secret
        self.env = {**os.environ, **env, "WEBHOOK_SECRET": secret, "LOG_LEVEL": "INFO"}
        self.env.pop("CHROMA_PATH", None)
        self.logs: list[Path] = []
        self.live: list[asyncio.subprocess.Process] = []

    def probes(self) -> list[Path]:
        return sorted(self.workdir.glob("probe-*.txt"))

    def _probed(self, path: Path) -> list[list[str]]:
        return [line.split() for line in path.read_text().splitlines()] if path.exists() else []

    def job_runs(self) -> list[JobRun]:
        """Every probed job run of every worker process so far."""
        return [
            JobRun(int(pid), job, float(start), float(end))
            for path in self.probes()
            for pid, kind, job, start, end in (f for f in self._probed(path) if f[1] == "job")
        ]

    def owner(self, worker: Worker) -> str:
        """The inbox owner (lease holder name) of the worker's current process."""
        path = self.workdir / f"probe-{worker.name}{worker.starts}.txt"
        [owner] = [fields[2] for fields in self._probed(path) if fields[1] == "owner"]
        return owner

    async def _spawn(
        self, argv: list[str], name: str, env: Mapping[str, str], *, capture: bool = False
    ) -> asyncio.subprocess.Process:
        log = self.workdir / f"{len(self.logs) + 1:02d}-{name}.log"
        self.logs.append(log)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *argv,
                env={**self.env, **env},
                cwd=self.workdir,  # no stray .env is picked up
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if capture else fd,
                stderr=fd,
            )
        finally:
            os.close(fd)
        self.live.append(process)
        return process

    async def start(self, worker: Worker) -> None:
        """Start `worker`'s process and return once its webhook answers."""
        worker.starts += 1
        name = f"{worker.name}{worker.starts}"
        env = {
            "WEBHOOK_PORT": str(worker.port),
            "SCALE_PROBE": str(self.workdir / f"probe-{name}.txt"),
        }
        worker.process = await self._spawn(["-c", PROBED_WEBHOOK_RUN], name, env)
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while True:  # a request without the secret: 403 once the server is up
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.post(worker.url, data=b"{}") as answer:
                        if answer.status == 403:
                            return
                if worker.process.returncode is not None:
                    raise RuntimeError(f"{name} exited with {worker.process.returncode}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not serve within {BOOT_TIMEOUT_S:.0f}s")
                await asyncio.sleep(0.2)

    async def kill(self, worker: Worker) -> None:
        """SIGKILL the worker and wait until it is gone."""
        assert worker.process is not None
        worker.process.send_signal(signal.SIGKILL)
        code = await asyncio.wait_for(worker.process.wait(), EXIT_TIMEOUT_S)
        assert code == -signal.SIGKILL, code

    async def terminate(self, worker: Worker) -> int:
        """SIGTERM (a graceful drain) and the exit code."""
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(worker.process.wait(), EXIT_TIMEOUT_S)

    async def cli(self, *args: str) -> tuple[int, str]:
        """Run `memorybot *args` to completion: (exit code, stdout)."""
        name = "-".join(args).replace("/", "_")
        process = await self._spawn(["-m", "bot.cli", *args], name, {}, capture=True)
        stdout, _ = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
        assert process.returncode is not None
        return process.returncode, stdout.decode(errors="replace")

    async def cleanup(self) -> None:
        for process in self.live:
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
                await process.wait()

    def dump(self, lines: int = 40) -> str:
        """The tail of every process log (printed when a test fails)."""
        out = []
        for log in self.logs:
            tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
            out.append(f"===== {log.name} =====\n" + "\n".join(tail))
        return "\n".join(out)
