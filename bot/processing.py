"""Processing updates: retries, dead letters, each chat in order and chats in parallel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError

from bot.actors import thread_of
from bot.context import BotApplication, services_of
from bot.logsafe import describe_error, log_failure
from bot.services import BotServices

log = logging.getLogger("memorybot.intake")
ATTEMPTS = 3
BACKOFF_S = 0.5
MAX_PARALLEL_CHATS = 64


class UpdateProcessor:
    """Runs updates through the Application, retrying failures and parking the hopeless ones."""

    def __init__(
        self,
        app: BotApplication,
        *,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        self.app = app
        self.services: BotServices = services_of(app.bot_data)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._lanes = asyncio.Semaphore(MAX_PARALLEL_CHATS)

    async def parse(self, raw: Sequence[dict[str, Any]]) -> list[Update]:
        """Parse each update on its own; one the library cannot read is parked, not fatal."""
        updates: list[Update] = []
        for item in raw:
            try:
                update = Update.de_json(item, self.app.bot)
            except Exception as error:
                letter_id = await self.services.ledger.park(
                    update_id=int(item["update_id"]),
                    chat_id=chat_in(item),
                    raw=item,
                    error=f"unparseable: {describe_error(error)}",
                    attempts=1,
                )
                log_failure(
                    log,
                    "update=%s unparseable, parked dead_letter=%s",
                    item["update_id"],
                    letter_id,
                    error=error,
                )
                continue
            if update is not None:
                updates.append(update)
        return updates

    async def process_batch(self, updates: Sequence[Update], *, replay: bool = False) -> None:
        """Handle `updates`: skip those seen before, keep each chat's order, mark the rest done."""
        ids = [u.update_id for u in updates]
        seen = set() if replay else await self.services.ledger.seen_many(ids)
        chats: dict[int, list[Update]] = defaultdict(list)
        for update in updates:
            if update.update_id not in seen:
                chat = update.effective_chat
                chats[chat.id if chat else 0].append(update)
        await asyncio.gather(*(self._chat_lane(lane) for lane in chats.values()))
        await self.services.ledger.mark_many([i for i in ids if i not in seen])

    async def _chat_lane(self, updates: list[Update]) -> None:
        async with self._lanes:
            for update in updates:
                await self.process_one(update)

    async def process_one(self, update: Update) -> None:
        """Try an update up to `attempts` times; then park it as a dead letter and apologise."""
        error: BaseException | None = None
        for attempt in range(1, self.attempts + 1):
            error = await self._run(update)
            if error is None:
                return
            if isinstance(error, Forbidden):
                log.warning("update=%s not answered: %s", update.update_id, describe_error(error))
                return
            log.warning(
                "update=%s attempt=%d failed: %s", update.update_id, attempt, describe_error(error)
            )
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        assert error is not None
        await self._park(update, error)

    async def _run(self, update: Update) -> BaseException | None:
        failures = self.services.failures
        failures.pop(update.update_id, None)
        try:
            await self.app.process_update(update)
        except Exception as error:  # process_update itself rarely raises; be safe
            return error
        return failures.pop(update.update_id, None)

    async def _park(self, update: Update, error: BaseException) -> None:
        reference = secrets.token_hex(3)
        chat = update.effective_chat
        letter_id = await self.services.ledger.park(
            update_id=update.update_id,
            chat_id=chat.id if chat else None,
            raw=update.to_dict(),
            error=f"[{reference}] {describe_error(error)}",
            attempts=self.attempts,
        )
        log_failure(
            log,
            "update=%s parked dead_letter=%s ref=%s",
            update.update_id,
            letter_id,
            reference,
            error=error,
        )
        if chat is not None:
            with contextlib.suppress(TelegramError):
                await chat.send_message(
                    "😔 Sorry, something went wrong and I could not finish that. "
                    f"Reference: <code>{reference}</code>",
                    parse_mode=ParseMode.HTML,
                    message_thread_id=thread_of(update),
                )


def chat_in(raw: dict[str, Any]) -> int | None:
    """The chat id of a raw update, if it has one where messages keep it (best effort)."""
    for value in raw.values():
        if not isinstance(value, dict):
            continue
        message = value.get("message")
        chat = (message if isinstance(message, dict) else value).get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
    return None


def updates_from(raw: Sequence[dict[str, Any]], app: BotApplication) -> list[Update]:
    """Parse raw update JSON (dead letters, webhook bodies) into Update objects."""
    return [u for u in (Update.de_json(item, app.bot) for item in raw) if u is not None]
