"""The `memorybot` command line: run the bot, manage the database, check and rebuild the index."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import uvloop
from pydantic import ValidationError

from bot.logformat import LogFormat, make_formatter
from bot.operations import (
    cmd_check,
    cmd_db_upgrade,
    cmd_dlq,
    cmd_expire,
    cmd_reindex,
    cmd_repair,
    cmd_sweep,
)
from engine.index_model import IndexModelMismatch
from engine.settings import Settings, describe_error, load_settings

QUIET_LOGGERS = ("httpx", "alembic", "sentence_transformers", "chromadb", "apscheduler")
Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Text or JSON lines (`LOG_FORMAT`) on stderr; chatty libraries only from WARNING up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format, level))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Run the Telegram bot (long polling, or a webhook)."""
    if settings.telegram_bot_token is None:
        print(
            "memorybot: no TELEGRAM_BOT_TOKEN configured; set it in .env, "
            "or try the bot locally with `memorybot console`",
            file=sys.stderr,
        )
        return 2
    from bot.runner import run_polling
    from bot.webhook import run_webhook

    return await (run_webhook(settings) if args.webhook else run_polling(settings))


async def cmd_console(settings: Settings, _args: argparse.Namespace) -> int:
    """Chat with the bot in this terminal against the local Bot API emulator."""
    from bot.console import run_console

    if settings.log_level != "DEBUG":  # the terminal is for the conversation
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("telegram").setLevel(logging.WARNING)

    return await run_console(settings)


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand, each with its handler in `handler`."""
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
    check.add_argument(
        "--user", type=int, default=None, help="one space: a user's or a group's id"
    )
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


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop EVENT_LOOP names: asyncio's own (None: the default) or uvloop's."""
    return uvloop.new_event_loop if name == "uvloop" else None


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
    configure_logging(settings.log_level, settings.log_format)
    handler: Command = args.handler
    try:
        with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
            return runner.run(handler(settings, args))
    except IndexModelMismatch as error:  # one line for the operator, no traceback
        print(f"memorybot: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
