"""Running one update through the Application, and parking the ones that keep failing."""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.actors import thread_of
from bot.context import BotApplication, services_of
from bot.lanes import chat_in
from bot.logsafe import describe_error, log_failure
from bot.services import BotServices
from engine.metrics import UPDATE_SECONDS, UPDATES_PARKED

log = logging.getLogger("memorybot.intake")
ATTEMPTS = 3
BACKOFF_S = 0.5


class Unparseable(Exception):
    """An update the library cannot read (parked at once: retrying cannot help)."""


class UpdateProcessor:
    """Hands updates to the Application and reports what went wrong, if anything."""

    def __init__(
        self, app: BotApplication, *, attempts: int = ATTEMPTS, backoff_s: float = BACKOFF_S
    ) -> None:
        self.app = app
        self.services: BotServices = services_of(app.bot_data)
        self.attempts = attempts
        self.backoff_s = backoff_s

    def parse(self, raw: dict[str, Any]) -> Update:
        """The Update in `raw`; raises Unparseable when the library cannot read it."""
        try:
            update = Update.de_json(raw, self.app.bot)
        except Exception as error:
            raise Unparseable(describe_error(error)) from error
        if update is None:
            raise Unparseable("empty update")
        return update

    async def run_once(self, update: Update) -> BaseException | None:
        """Process `update` once; the error a handler raised, or None."""
        failures = self.services.failures
        failures.pop(update.update_id, None)
        try:
            with UPDATE_SECONDS.time():
                await self.app.process_update(update)
            failure = failures.pop(update.update_id, None)
            if failure is None:
                await self.services.write_user(update)  # a registration nothing carried
        except Exception as error:  # process_update itself rarely raises; be safe
            return error
        finally:
            self.services.forget_update(update.update_id)
        return failure

    async def park(
        self, update_id: int, raw: dict[str, Any], error: BaseException, *, attempts: int
    ) -> None:
        """Keep a hopeless update as a dead letter and tell its chat, with a reference."""
        reference = secrets.token_hex(3)
        chat_id = chat_in(raw)
        letter_id = await self.services.ledger.park(
            update_id=update_id,
            chat_id=chat_id,
            raw=raw,
            error=f"[{reference}] {describe_error(error)}",
            attempts=attempts,
        )
        UPDATES_PARKED.inc()
        log_failure(
            log,
            "update=%s parked dead_letter=%s ref=%s",
            update_id,
            letter_id,
            reference,
            error=error,
        )
        if chat_id is not None and not isinstance(error, Unparseable):
            with contextlib.suppress(TelegramError):
                await self.app.bot.send_message(
                    chat_id,
                    "😔 Sorry, something went wrong and I could not finish that. "
                    f"Reference: <code>{reference}</code>",
                    parse_mode=ParseMode.HTML,
                    message_thread_id=_thread_in(self, raw),
                )


def _thread_in(processor: UpdateProcessor, raw: dict[str, Any]) -> int | None:
    try:
        return thread_of(processor.parse(raw))
    except Unparseable:
        return None
