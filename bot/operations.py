"""The operator's commands: `memorybot db upgrade|check|repair|expire|sweep|reindex|dlq`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from bot.ledger import DeadLetter, UpdateLedger
from engine.app import MemoryEngine, open_engine
from engine.inbox import Inbox
from engine.settings import Settings
from engine.stores import upgrade_database


async def with_engine(
    settings: Settings,
    work: Callable[[MemoryEngine], Awaitable[int]],
    *,
    model_check: bool = True,
    rebuild: bool = False,
) -> int:
    """Run `work` on an open engine, closing it afterwards; returns the exit status.

    `model_check=False` opens an index built with another embedding model (check, reindex);
    `rebuild` embeds with the backend of new indexes (reindex; see `open_stores`).
    """
    engine = await open_engine(settings, model_check=model_check, rebuild=rebuild)
    try:
        return await work(engine)
    finally:
        await engine.aclose()


async def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    """Apply the migrations and say which revision the database is at."""
    print(f"database at revision {await upgrade_database(settings)}")
    return 0


async def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """Compare SQL with the vector index; exit 1 on drift."""

    async def work(engine: MemoryEngine) -> int:
        report = await engine.index.check(space_id=args.user)
        model = await engine.index.model_status()
        data = {**report.as_dict(), "model": model.as_dict()}
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            print(f"scope            {data['scope']}")
            print(f"sql rows         {report.sql_count}")
            print(f"chroma vectors   {report.vector_count}")
            print(f"rows w/o vector  {len(report.missing)}")
            print(f"vectors w/o row  {len(report.orphans)}")
            print(f"stale vectors    {len(report.stale)}")
            print(f"expired, present {report.expired_present}")
            keyword = report.keyword
            print(f"keyword index    {keyword.missing} rows missing, {keyword.stale} stale")
            for problem in keyword.problems:
                print(f"keyword index    {problem}")
            print(f"last sweep       {report.last_sweep_at or 'never'}")
            recorded = model.recorded.describe() if model.recorded else "not recorded yet"
            print(f"index model      {recorded}")
            print(f"this model       {model.current.describe()} ({model.current.backend})")
            if model.mismatch:
                print("MODEL MISMATCH: run `memorybot reindex` to rebuild with this model")
            elif model.faster_backend:
                print(
                    f"faster backend   {model.faster_backend} is available: "
                    "`memorybot reindex` moves the index to it"
                )
            print("DRIFT: run `memorybot repair`" if report.drift else "ok: SQL and Chroma agree")
        return 1 if report.drift or model.mismatch else 0

    return await with_engine(settings, work, model_check=False)


async def cmd_expire(settings: Settings, _args: argparse.Namespace) -> int:
    """Delete expired memories now."""
    from jobs import runs

    async def work(engine: MemoryEngine) -> int:
        print((await runs.expire(engine)).describe())
        return 0

    return await with_engine(settings, work)


async def cmd_sweep(settings: Settings, args: argparse.Namespace) -> int:
    """Run the orphan sweep once."""
    from jobs import runs

    async def work(engine: MemoryEngine) -> int:
        print((await runs.sweep(engine, grace_s=args.grace)).describe())
        return 0

    return await with_engine(settings, work)


async def cmd_repair(settings: Settings, _args: argparse.Namespace) -> int:
    """Make the vector index match SQL now (no grace period)."""

    async def work(engine: MemoryEngine) -> int:
        result = await engine.index.repair()
        print(", ".join(f"{k}={v}" for k, v in result.as_dict().items()))
        return 0

    return await with_engine(settings, work)


async def cmd_reindex(settings: Settings, _args: argparse.Namespace) -> int:
    """Rebuild the vector index from SQL into a new generation, with a progress bar."""
    from tqdm import tqdm

    from engine.index_care import FOLLOW_INTERVAL_S

    async def work(engine: MemoryEngine) -> int:
        async with engine.stores.reading() as repos:
            total = await repos.memories.count_all()
        with tqdm(total=total, unit="memory", disable=None) as bar:
            done = await engine.index.reindex(progress=bar.update, settle_s=3 * FOLLOW_INTERVAL_S)
        print(f"reindexed {done} memories into generation {engine.index.generation}")
        return 0

    return await with_engine(settings, work, model_check=False, rebuild=True)


async def cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    """List the dead letters, or replay them through the bot."""

    async def work(engine: MemoryEngine) -> int:
        ledger = UpdateLedger(engine.stores)
        letters = await ledger.dead_letters(pending_only=not args.all)
        if args.dlq_command == "list":
            for letter in letters:
                print(
                    f"#{letter.id} update={letter.update_id} chat={letter.chat_id} "
                    f"at={letter.created_at:%Y-%m-%d %H:%M} {letter.error[:120]}"
                )
            print(f"{len(letters)} dead letter(s)")
            return 0
        return await replay(settings, ledger, [lt for lt in letters if args.id in (None, lt.id)])

    return await with_engine(settings, work)


async def replay(settings: Settings, ledger: UpdateLedger, letters: list[DeadLetter]) -> int:
    """Hand parked updates back to the inbox. A running bot processes them; when none runs,
    this command processes them itself (no scheduler, no broadcast worker)."""
    if not letters:
        print("nothing to replay")
        return 0
    for letter in letters:
        await ledger.requeue(letter)
        print(f"queued #{letter.id} (update {letter.update_id}) in the inbox")
    inbox = Inbox(ledger.stores)
    ids = [letter.update_id for letter in letters]
    if await inbox.worker_alive():
        print("a running bot processes them")
        return 0
    if settings.telegram_bot_token is None:
        print(
            "memorybot: no bot is running and replay needs TELEGRAM_BOT_TOKEN to answer; "
            "they stay queued for the next start",
            file=sys.stderr,
        )
        return 2
    from bot.runner import running_bot

    async with running_bot(settings, background=False) as runtime:
        await _until_finished(runtime.inbox, ids)
    print(f"replayed {len(ids)} update(s)")
    return 0


async def _until_finished(inbox: Inbox, update_ids: list[int]) -> None:
    """Wait until none of `update_ids` is pending (polling: any process may finish them)."""
    for _ in iter(int, 1):
        if "pending" not in (await inbox.statuses(update_ids)).values():
            return
        await asyncio.sleep(0.2)
