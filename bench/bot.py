"""Benchmark of the whole bot: saves/s and recalls/s with send→reply latency, end to end.

The Bot API emulator (botapi_emulator/) runs in this process; the bot runs as a real subprocess
(`python -m bot.cli run`, long polling) against it, on a fresh SQLite file (or a fresh
PostgreSQL database with --db postgres) and a fresh embedded Chroma. 50 users send 20 notes
each, all queued at once, then 20 `/recall <query>` each. The floor is measured in this process
before and after (best of the two): the model's batched encode and Chroma's batched add, and the
pipeline limit they make in series (issue 31). Around the save burst the bench reads the bot's
CPU seconds (per thread) from /proc and its SQL commits and COUNTs from its /metrics.
`--limiter off` (the default, as issue 31 measures) sets TELEGRAM_MAX_RATE=0; `--limiter
default` leaves Telegram's 30 messages/s window on.

Run from the repo root (JSON on stdout, progress on stderr, section "## Bot (bench/bot.py)" of
docs/benchmarks.md replaced):

    python -m bench.bot [--db postgres] [--users 50] [--per-user 20] [--limiter default]
    python -m bench.bot --quick --out /tmp/bench-smoke.md   # smoke run, tiny sizes
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    Log,
    Row,
    Section,
    busy,
    command_line,
    load_average,
    nproc,
    offline_env,
    parser_for,
    pct,
    rate,
    replace_section,
    scratch_database,
    setup_process,
)
from bench.engine import QUERIES, Floors, make_text, measure_floors, model_encoder
from bench.observe import Snapshot, free_port
from botapi_emulator import BotApiEmulator, SentMessage

TITLE = "Bot"
FIRST_USER = 500_001
WARM_UP_USER = 499_999
BOOT_TIMEOUT_S = 300.0
EXIT_TIMEOUT_S = 60.0
PHASE_TIMEOUT_S = 900.0
TARGET_SAVES_PER_S = 170.0  # issue 31: and ≥ 30 % of the pipeline limit of the same run
TARGET_PIPELINE_SHARE = 0.30
TARGET_SAVE_P95_MS = 6000.0
TARGET_COMMITS_PER_SAVE = 0.2
TARGET_COUNTS_PER_SAVE = 1.0
TARGET_RSS_MB = 450  # issue 29: the bot after a burst of saves and recalls, no libtorch
log = Log("bench.bot")


class TimedEmulator(BotApiEmulator):
    """The emulator, noting when each bot message reached it (perf_counter), per chat."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[int, list[tuple[float, str]]] = defaultdict(list)
        self.reply_count = 0

    def record_sent(self, message: SentMessage) -> None:
        text = message.text or message.caption or ""
        self.replies[message.chat_id].append((time.perf_counter(), text))
        self.reply_count += 1
        super().record_sent(message)

    async def wait_replies(
        self, total: int, bot: asyncio.subprocess.Process, limit_s: float, what: str
    ) -> None:
        """Until `total` bot messages were recorded in all; fails if the bot dies first."""
        deadline = time.monotonic() + limit_s
        while self.reply_count < total:
            if bot.returncode is not None:
                raise RuntimeError(f"the bot exited with {bot.returncode} during {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{what}: {self.reply_count}/{total} replies after {limit_s:.0f}s"
                )
            await self.sent_signal.wait(min(left, 0.5))


@dataclass
class Phase:
    """One burst: every user's messages queued at once, then every reply matched to its send."""

    name: str
    messages: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return rate(self.messages, self.seconds)

    def summary(self) -> dict[str, float]:
        return {
            "per_s": self.per_s,
            "p50_ms": pct(self.latencies_ms, 0.5),
            "p95_ms": pct(self.latencies_ms, 0.95),
        }


async def burst(
    emulator: TimedEmulator,
    bot: asyncio.subprocess.Process,
    name: str,
    texts: dict[int, list[str]],
    expected: Callable[[str], bool],
) -> Phase:
    """Queue every text at once (users interleaved, like real traffic) and time the replies.

    Each message gets exactly one reply in its chat, and a chat is answered in order, so the
    i-th new reply in a chat answers the i-th message sent to it.
    """
    users = list(texts)
    before = {user: len(emulator.replies[user]) for user in users}
    sent_at: dict[int, list[float]] = {user: [] for user in users}
    total = sum(len(t) for t in texts.values())
    target = emulator.reply_count + total
    for i in range(max(len(t) for t in texts.values())):
        for user in users:
            if i < len(texts[user]):
                sent_at[user].append(time.perf_counter())
                emulator.user_message(user, texts[user][i])
    log(f"{name}: {total} messages from {len(users)} users queued")
    await emulator.wait_replies(target, bot, PHASE_TIMEOUT_S, name)
    await asyncio.sleep(0.2)  # a surplus reply (e.g. a split message) would show up now
    phase = Phase(name, messages=total)
    last_reply = 0.0
    for user in users:
        replies = emulator.replies[user][before[user] :]
        if len(replies) != len(sent_at[user]):
            raise RuntimeError(
                f"{name}: chat {user} got {len(replies)} replies to {len(sent_at[user])} messages"
            )
        for sent, (replied, text) in zip(sent_at[user], replies, strict=True):
            phase.latencies_ms.append((replied - sent) * 1000)
            last_reply = max(last_reply, replied)
            if not expected(text):
                phase.unexpected.append(text[:120])
    phase.seconds = last_reply - min(times[0] for times in sent_at.values() if times)
    log(f"{name}: {phase.summary()}, {len(phase.unexpected)} unexpected replies")
    return phase


def is_saved(text: str) -> bool:
    return "Saved" in text


def is_recall(text: str) -> bool:
    return text.startswith("🔎")


class BotProcess:
    """`python -m bot.cli run` against the emulator, its output in a log file."""

    def __init__(
        self, emulator: BotApiEmulator, database_url: str, work: Path, *, limiter: str = "off"
    ) -> None:
        self.emulator = emulator
        self.work = work
        self.log_path = work / "bot.log"
        self.metrics_port = free_port()
        self.env = {
            **os.environ,
            **offline_env(),
            "TELEGRAM_BOT_TOKEN": emulator.token,
            "TELEGRAM_API_BASE_URL": emulator.base_url,
            "DATABASE_URL": database_url,
            "CHROMA_PATH": str(work / "chroma"),
            "LOG_LEVEL": os.environ.get("BENCH_BOT_LOG_LEVEL", "INFO"),
            "METRICS_PORT": str(self.metrics_port),  # the bench reads the SQL counters there
        }
        self.env.pop("CHROMA_URL", None)
        self.env.pop("TELEGRAM_MAX_RATE", None)
        if limiter == "off":  # else Telegram's 30 messages/s window caps the replies
            self.env["TELEGRAM_MAX_RATE"] = "0"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> asyncio.subprocess.Process:
        """Spawn the bot and return once it long-polls getUpdates."""
        calls_before = len(self.emulator.calls)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot.cli",
                "run",
                env=self.env,
                cwd=self.work,  # no stray .env is picked up
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
            )
        finally:
            os.close(fd)
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while not any(m == "getUpdates" for _, m, _ in self.emulator.calls[calls_before:]):
            if self.process.returncode is not None:
                raise RuntimeError(f"the bot exited with {self.process.returncode} at start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bot did not poll within {BOOT_TIMEOUT_S:.0f}s")
            await asyncio.sleep(0.1)
        return self.process

    async def terminate(self) -> int:
        """SIGTERM (graceful drain) and the exit code; SIGKILL if it hangs."""
        assert self.process is not None
        if self.process.returncode is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), EXIT_TIMEOUT_S)
        except TimeoutError:
            log(f"the bot ignored SIGTERM for {EXIT_TIMEOUT_S:.0f}s; killing it")
            self.process.send_signal(signal.SIGKILL)
            return await self.process.wait()

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no bot log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def floors_now(rng: random.Random, work: Path, quick: bool) -> Floors:
    """The model's and Chroma's batched rates in this process (model as the bot loads it)."""
    from engine.settings import Settings

    encode = model_encoder(Settings(_env_file=None))  # type: ignore[call-arg]
    texts = [make_text(rng) for _ in range(128 if quick else 512)]
    encode(texts[:64])  # warm-up: load the model, first-call allocations
    return measure_floors(encode, texts, work, quick)


async def run(
    users: Sequence[int],
    per_user: int,
    url: str,
    work: Path,
    rng: random.Random,
    keep_log: Path | None = None,
    profile: Path | None = None,
    limiter: str = "off",
) -> tuple[Phase, Phase, int, dict[str, Any]]:
    emulator = TimedEmulator()
    await emulator.start()
    bot = BotProcess(emulator, url, work, limiter=limiter)
    try:
        process = await bot.start()
        log(f"bot polling (pid {process.pid}); warming up")
        emulator.user_message(WARM_UP_USER, make_text(rng))
        emulator.user_message(WARM_UP_USER, "/recall " + make_text(rng, QUERIES, ""))
        await emulator.wait_replies(2, process, BOOT_TIMEOUT_S, "warm-up")
        notes = {u: [make_text(rng) for _ in range(per_user)] for u in users}
        spy = await start_profiler(process.pid, profile) if profile else None
        before = await Snapshot.take(process.pid, bot.metrics_port)
        saves = await burst(emulator, process, "saves", notes, is_saved)
        spent = (await Snapshot.take(process.pid, bot.metrics_port)) - before
        if spy is not None:
            await stop_profiler(spy, profile)
        queries = {
            u: ["/recall " + make_text(rng, QUERIES, "") for _ in range(per_user)] for u in users
        }
        recalls = await burst(emulator, process, "recalls", queries, is_recall)
        memory = process_memory(process.pid) | spent.per(saves.messages)
        code = await bot.terminate()
    except BaseException:
        log(f"bot log tail:\n{bot.tail()}")
        raise
    finally:
        if bot.process is not None and bot.process.returncode is None:
            bot.process.send_signal(signal.SIGKILL)
            await bot.process.wait()
        await emulator.stop()
        if keep_log is not None and bot.log_path.exists():
            shutil.copyfile(bot.log_path, keep_log)
    log(f"bot exited with {code} after SIGTERM")
    return saves, recalls, code, memory


def process_memory(pid: int) -> dict[str, Any]:
    """The bot's RSS now and at its peak (MB), and whether libtorch is mapped in it."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {
        "bot_rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024),
        "bot_peak_rss_mb": round(int(fields["VmHWM"].split()[0]) / 1024),
        "libtorch_mapped": "libtorch" in maps,
    }


async def start_profiler(pid: int, out: Path | None) -> asyncio.subprocess.Process:
    """py-spy attached to the bot for the save burst (collapsed stacks, native frames off)."""
    spy = Path(sys.executable).parent / "py-spy"
    return await asyncio.create_subprocess_exec(
        str(spy),
        "record",
        "-p",
        str(pid),
        "-o",
        str(out),
        "--format",
        "raw",
        "-r",
        "200",
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def stop_profiler(spy: asyncio.subprocess.Process, out: Path | None) -> None:
    """Stop py-spy (SIGINT makes it write its file)."""
    spy.send_signal(signal.SIGINT)
    await asyncio.wait_for(spy.wait(), 60)
    log(f"profile of the save burst written to {out}")


def why_missed(r: dict[str, Any], saves: Phase) -> list[str]:
    notes: list[str] = []
    pipeline = r["floor_pipeline_series_per_s"]
    if saves.per_s < max(TARGET_SAVES_PER_S, TARGET_PIPELINE_SHARE * pipeline):
        notes.append(
            f"saves/s: {saves.per_s:.0f}/s is {r['share_of_pipeline']:.0%} of the pipeline "
            f"limit measured here ({pipeline:.0f}/s). The bot spent "
            f"{r['cpu_ms_per_msg']} ms of CPU per saved message (threads: "
            + ", ".join(
                f"{k[len('cpu_s_thread_') :]} {v} s"
                for k, v in r.items()
                if k.startswith("cpu_s_thread_")
            )
            + f") and committed {r['commits_per_msg']} SQL transactions per message: the "
            "model and Chroma need ≈ 2.5 ms of CPU per message in batches, the rest is the "
            "bot's own path (issues 31 and 32: claim at intake, one transaction per batch, one "
            "thread hop per transaction)."
        )
    if r["commits_per_msg"] > TARGET_COMMITS_PER_SAVE or r["counts_per_msg"] > 1:
        notes.append(
            f"SQL per saved message: {r['commits_per_msg']} commits and {r['counts_per_msg']} "
            f"COUNTs ({r['statements_per_msg']} statements); each commit waits for SQLite's "
            "one write lock (a private save today: inbox store, claim, save, done mark)."
        )
    save_p95 = pct(saves.latencies_ms, 0.95)
    if save_p95 > TARGET_SAVE_P95_MS:
        floor_ms = 0.95 * saves.seconds * 1000
        needed = 0.95 * saves.messages / (TARGET_SAVE_P95_MS / 1000)
        notes.append(
            f"save p95: all {saves.messages} messages are queued at once, so a reply also waits "
            f"for the messages ahead of it; at {saves.per_s:.0f}/s the burst takes "
            f"{saves.seconds * 1000:.0f} ms and the 95th percentile message cannot be answered "
            f"much before ~{floor_ms:.0f} ms whatever the per-message cost. "
            f"p95 ≤ {TARGET_SAVE_P95_MS:.0f} ms under "
            f"this burst needs ≥ {needed:.0f} saves/s."
        )
    if notes and busy():
        notes.append(
            f"the machine was busy (load average {load_average()[0]:.1f} on {nproc()} CPUs): "
            "other processes shared the CPUs with the model"
        )
    return notes


def section(result: dict[str, Any], argv: list[str], saves: Phase) -> Section:
    r = result
    wanted = max(TARGET_SAVES_PER_S, TARGET_PIPELINE_SHARE * r["floor_pipeline_series_per_s"])
    rows = [
        Row(
            "saves/s (first send → last Saved reply)",
            f"{r['saves_per_s']}/s",
            f"≥ {TARGET_SAVES_PER_S:.0f}/s and ≥ {TARGET_PIPELINE_SHARE:.0%} of the limit",
            r["saves_per_s"] >= wanted,
        ),
        Row("save latency p50 (send → reply)", f"{r['save_p50_ms']} ms"),
        Row(
            "save latency p95 (send → reply)",
            f"{r['save_p95_ms']} ms",
            f"≤ {TARGET_SAVE_P95_MS:.0f} ms",
            r["save_p95_ms"] <= TARGET_SAVE_P95_MS,
        ),
        Row("bot CPU per saved message", f"{r['cpu_ms_per_msg']} ms"),
        Row(
            "SQL commits per saved message",
            f"{r['commits_per_msg']}",
            f"≤ {TARGET_COMMITS_PER_SAVE}",
            r["commits_per_msg"] <= TARGET_COMMITS_PER_SAVE,
        ),
        Row(
            "COUNT statements per saved message",
            f"{r['counts_per_msg']}",
            f"≤ {TARGET_COUNTS_PER_SAVE:.0f}",
            r["counts_per_msg"] <= TARGET_COUNTS_PER_SAVE,
        ),
        Row("SQL statements per saved message", f"{r['statements_per_msg']}"),
        Row(
            "event-loop lag in the save burst, p50 / p95 (bucket bound)",
            f"{r.get('loop_lag_p50_ms', '—')} / {r.get('loop_lag_p95_ms', '—')} ms",
        ),
        Row("recalls/s", f"{r['recalls_per_s']}/s"),
        Row("recall latency p50", f"{r['recall_p50_ms']} ms"),
        Row("recall latency p95", f"{r['recall_p95_ms']} ms"),
        Row("floor: batched encode (bench process)", f"{r['floor_encode_per_s']}/s"),
        Row("floor: batched Chroma add", f"{r['floor_chroma_add_per_s']}/s"),
        Row("pipeline limit (encode + add in series)", f"{r['floor_pipeline_series_per_s']}/s"),
        Row("saves/s ÷ pipeline limit", f"{r['share_of_pipeline']:.0%}"),
        Row(
            "bot RSS after the bursts (peak)",
            f"{r['bot_rss_mb']} MB ({r['bot_peak_rss_mb']} MB)",
            f"≤ {TARGET_RSS_MB} MB",
            r["bot_rss_mb"] <= TARGET_RSS_MB,
        ),
        Row(
            "libtorch mapped in the bot",
            "yes" if r["libtorch_mapped"] else "no",
            "no",
            not r["libtorch_mapped"],
        ),
    ]
    threads = ", ".join(
        f"{k[len('cpu_s_thread_') :]} {v} s" for k, v in r.items() if k.startswith("cpu_s_thread_")
    )
    facts = [
        f"database: {r['db']} (fresh), embedded Chroma (fresh, default shards)",
        "bot: a real `python -m bot.cli run` subprocess (long polling, LOG_LEVEL=INFO) against "
        "the Bot API emulator running in the bench process; limiter "
        + (
            "off (`TELEGRAM_MAX_RATE=0`: no overall send window)"
            if r["limiter"] == "off"
            else "at its default (30 messages/s overall, 20 a minute per group)"
        ),
        f"load: {r['users']} users × {r['per_user']} messages, all queued at once, users "
        "interleaved; first saves (plain text notes), then `/recall <question>`; one warm-up "
        "save and recall before",
        "latency: message queued in the emulator → the bot's sendMessage reaching it; "
        "throughput: first message queued → last reply",
        "floor: the model as the bot loads it and a scratch embedded Chroma, in the bench "
        "process, best of before and after the bot run; the pipeline limit is one batched "
        "encode plus one batched add per message, in series",
        "per saved message, over the save burst: the bot's CPU (utime + stime from /proc), "
        "its SQL commits and COUNT statements (memorybot_sql_* on its /metrics)"
        + (f"; CPU by thread: {threads}" if threads else ""),
        f"embedding: {r['embedding']} (a fresh index: auto runs onnx-int8)",
        f"bot exit code after SIGTERM: {r['bot_exit_code']}",
    ]
    return Section(
        f"{TITLE} (bench/bot.py, --db {r['db']}, limiter {r['limiter']})",
        command_line("bench.bot", argv),
        facts,
        rows,
        why_missed(r, saves),
    )


async def main(args: Any, argv: list[str]) -> tuple[dict[str, Any], Section]:
    rng = random.Random(42)
    users = [FIRST_USER + i for i in range(args.users)]
    with tempfile.TemporaryDirectory(prefix="bench-bot-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        floors = floors_now(rng, work, args.quick)
        async with scratch_database(args.db, work) as url:
            saves, recalls, code, observed = await run(
                users, args.per_user, url, work, rng, args.bot_log, args.profile, args.limiter
            )
        floors = floors.best(floors_now(rng, work, args.quick))  # less sensitive to load
    s, r = saves.summary(), recalls.summary()
    result: dict[str, Any] = {
        "saves_per_s": s["per_s"],
        "save_p50_ms": s["p50_ms"],
        "save_p95_ms": s["p95_ms"],
        "recalls_per_s": r["per_s"],
        "recall_p50_ms": r["p50_ms"],
        "recall_p95_ms": r["p95_ms"],
        **{f"floor_{k}": v for k, v in floors.summary().items()},
        "share_of_pipeline": round(saves.per_s / floors.series_per_s, 3),
        "db": args.db,
        "limiter": args.limiter,
        "users": args.users,
        "per_user": args.per_user,
        "bot_exit_code": code,
        "embedding": f"{os.environ.get('EMBEDDING_BACKEND', 'auto')}, "
        f"EMBED_THREADS={os.environ.get('EMBED_THREADS', '1')}",
        **observed,
    }
    for phase in (saves, recalls):
        if phase.unexpected:
            log(f"{phase.name}: unexpected replies, e.g. {phase.unexpected[:3]}")
            result[f"{phase.name}_unexpected_replies"] = len(phase.unexpected)
    return result, section(result, argv, saves)


def cli() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--users", type=int, default=None, help="simulated users (50)")
    parser.add_argument("--per-user", type=int, default=None, help="messages per user (20)")
    parser.add_argument("--bot-log", type=Path, default=None, help="keep the bot's log here")
    parser.add_argument(
        "--limiter",
        choices=["off", "default"],
        default="off",
        help="the bot's overall send window: off (TELEGRAM_MAX_RATE=0) or Telegram's 30/s",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the save burst into this file"
    )
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    # --quick: 120 messages per burst, still more than one getUpdates batch (100 updates)
    args.users = args.users or (10 if args.quick else 50)
    args.per_user = args.per_user or (12 if args.quick else 20)
    setup_process()
    result, text = asyncio.run(main(args, argv))
    replace_section(args.out, text)
    print(json.dumps(result, indent=2))
    if result["bot_exit_code"] != 0:
        log(f"the bot did not exit cleanly: code {result['bot_exit_code']}")
        sys.exit(1)


if __name__ == "__main__":
    cli()
