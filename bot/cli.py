"""The `memorybot` command line: run the bot, manage the database, check and rebuild the index."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from pydantic import ValidationError

from engine.app import MemoryEngine, open_engine
from engine.settings import Settings, describe_error, load_settings

QUIET_LOGGERS = ("httpx", "alembic", "sentence_transformers", "chromadb", "apscheduler")
Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def configure_logging(level: str) -> None:
    """logfmt-ish lines on stderr; chatty libraries only from WARNING up."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


async def _with_engine(settings: Settings, work: Callable[[MemoryEngine], Awaitable[int]]) -> int:
    engine = await open_engine(settings)
    try:
        return await work(engine)
    finally:
        await engine.aclose()


async def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from storage import migrate
    from storage.db import open_database

    db = open_database(settings.database_url)
    try:
        await migrate.upgrade(db.write_engine)
        print(f"database at revision {await migrate.current_revision(db.write_engine)}")
    finally:
        await db.dispose()
    return 0


async def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    async def work(engine: MemoryEngine) -> int:
        report = await engine.memories.check(user_id=args.user)
        data = report.as_dict()
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
            print(f"last sweep       {report.last_sweep_at or 'never'}")
            print("DRIFT: run `memorybot repair`" if report.drift else "ok: SQL and Chroma agree")
        return 1 if report.drift else 0

    return await _with_engine(settings, work)


async def cmd_expire(settings: Settings, _args: argparse.Namespace) -> int:
    from jobs import runs

    async def work(engine: MemoryEngine) -> int:
        print((await runs.expire(engine)).describe())
        return 0

    return await _with_engine(settings, work)


async def cmd_sweep(settings: Settings, args: argparse.Namespace) -> int:
    from jobs import runs

    async def work(engine: MemoryEngine) -> int:
        print((await runs.sweep(engine, grace_s=args.grace)).describe())
        return 0

    return await _with_engine(settings, work)


async def cmd_repair(settings: Settings, _args: argparse.Namespace) -> int:
    async def work(engine: MemoryEngine) -> int:
        result = await engine.memories.repair()
        print(", ".join(f"{k}={v}" for k, v in result.as_dict().items()))
        return 0

    return await _with_engine(settings, work)


async def cmd_reindex(settings: Settings, _args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.repair import FOLLOW_INTERVAL_S

    async def work(engine: MemoryEngine) -> int:
        async with engine.db.reads() as session:
            from sqlalchemy import func, select

            from storage.models import MemoryRow

            total = int(await session.scalar(select(func.count()).select_from(MemoryRow)) or 0)
        with tqdm(total=total, unit="memory", disable=None) as bar:
            done = await engine.memories.reindex(
                progress=bar.update, settle_s=3 * FOLLOW_INTERVAL_S
            )
        print(f"reindexed {done} memories into generation {engine.memories.vectors.generation}")
        return 0

    return await _with_engine(settings, work)


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    if settings.telegram_bot_token is None:
        print(
            "memorybot: no TELEGRAM_BOT_TOKEN configured; set it in .env, "
            "or try the bot locally with `memorybot console`",
            file=sys.stderr,
        )
        return 2
    from bot.runner import run_polling, run_webhook

    return await (run_webhook(settings) if args.webhook else run_polling(settings))


async def cmd_console(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.console import run_console

    if settings.log_level != "DEBUG":  # the terminal is for the conversation
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("telegram").setLevel(logging.WARNING)

    return await run_console(settings)


async def cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    from engine.ledger import UpdateLedger

    async def work(engine: MemoryEngine) -> int:
        ledger = UpdateLedger(engine.db)
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

    return await _with_engine(settings, work)


async def replay(settings: Settings, ledger: Any, letters: list[Any]) -> int:
    """Run parked updates through the bot again (needs the Bot API: a token)."""
    if not letters:
        print("nothing to replay")
        return 0
    if settings.telegram_bot_token is None:
        print("memorybot: replay needs TELEGRAM_BOT_TOKEN (it answers the users)", file=sys.stderr)
        return 2
    from bot.intake import updates_from
    from bot.runner import running_bot

    async with running_bot(settings) as processor:
        for letter in letters:
            await processor.process_batch(updates_from([letter.raw], processor.app), replay=True)
            await ledger.mark_replayed(letter.id)
            print(f"replayed #{letter.id} (update {letter.update_id})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memorybot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the Telegram bot (polling, or --webhook)")
    run.add_argument("--webhook", action="store_true", help="serve a webhook instead of polling")
    run.set_defaults(handler=cmd_run)
    sub.add_parser(
        "console", help="chat with the bot in this terminal (no token needed)"
    ).set_defaults(handler=cmd_console)
    dlq = sub.add_parser("dlq", help="updates that kept failing")
    dlq.add_argument("dlq_command", choices=["list", "replay"])
    dlq.add_argument("id", nargs="?", type=int, default=None, help="replay only this one")
    dlq.add_argument("--all", action="store_true", help="include replayed ones")
    dlq.set_defaults(handler=cmd_dlq)
    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(handler=cmd_db_upgrade)
    check = sub.add_parser("check", help="compare SQL with Chroma; exit 1 on drift")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--user", type=int, default=None, help="one user's memories only")
    check.set_defaults(handler=cmd_check)
    sub.add_parser("repair", help="make Chroma match SQL now (no grace period)").set_defaults(
        handler=cmd_repair
    )
    sub.add_parser("expire", help="delete expired memories now").set_defaults(handler=cmd_expire)
    sweep = sub.add_parser("sweep", help="run the orphan sweep once")
    sweep.add_argument("--grace", type=int, default=None, help="grace period in seconds")
    sweep.set_defaults(handler=cmd_sweep)
    sub.add_parser("reindex", help="rebuild the vector index from SQL").set_defaults(
        handler=cmd_reindex
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `memorybot` console script."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    try:
        settings = load_settings()
    except ValidationError as error:
        print(f"memorybot: {describe_error(error)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    handler: Command = args.handler
    return asyncio.run(handler(settings, args))


if __name__ == "__main__":
    sys.exit(main())
