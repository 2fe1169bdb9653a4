"""At-least-once intake: process a batch, then confirm it; one chat in order, chats in parallel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, RetryAfter, TelegramError
from telegram.ext import Application
from telegram.warnings import PTBUserWarning

from bot.services import KEY, BotServices

log = logging.getLogger("memorybot.intake")
# We fetch getUpdates raw on purpose: one update PTB cannot parse must not block the others.
warnings.filterwarnings("ignore", message=r".*Bot\.getUpdates.*", category=PTBUserWarning)
ATTEMPTS = 3
BACKOFF_S = 0.5
POLL_TIMEOUT_S = 10
MAX_PARALLEL_CHATS = 64


class UpdateProcessor:
    """Runs updates through the Application, retrying failures and parking the hopeless ones."""

    def __init__(
        self,
        app: Application,  # type: ignore[type-arg]
        *,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        self.app = app
        self.services: BotServices = app.bot_data[KEY]
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
                letter = await self.services.ledger.park(
                    update_id=int(item["update_id"]),
                    chat_id=None,
                    raw=item,
                    error=f"unparseable: {error!r}",
                    attempts=1,
                )
                log.exception(
                    "update=%s unparseable, parked dead_letter=%s", item["update_id"], letter
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
                log.warning("update=%s not answered: %s", update.update_id, error)
                return
            log.warning("update=%s attempt=%d failed: %r", update.update_id, attempt, error)
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
        letter = await self.services.ledger.park(
            update_id=update.update_id,
            chat_id=chat.id if chat else None,
            raw=update.to_dict(),
            error=f"[{reference}] {error!r}",
            attempts=self.attempts,
        )
        log.error(
            "update=%s parked dead_letter=%s ref=%s",
            update.update_id,
            letter,
            reference,
            exc_info=error,
        )
        if chat is not None:
            with contextlib.suppress(TelegramError):
                await chat.send_message(
                    "😔 Sorry, something went wrong and I could not finish that. "
                    f"Reference: <code>{reference}</code>",
                    parse_mode=ParseMode.HTML,
                )


class PollingIntake:
    """getUpdates long polling that confirms a batch only after it was processed."""

    def __init__(
        self, processor: UpdateProcessor, *, poll_timeout_s: int = POLL_TIMEOUT_S
    ) -> None:
        self.processor = processor
        self.bot = processor.app.bot
        self.poll_timeout_s = poll_timeout_s
        self.stopping = asyncio.Event()
        self.offset: int | None = None

    def stop(self) -> None:
        """Finish the batch in hand, confirm it, and return from `run` (SIGTERM does this)."""
        self.stopping.set()

    async def run(self) -> None:
        """Poll until stopped; after a crash, unconfirmed updates are simply delivered again."""
        failures = 0
        while not self.stopping.is_set():
            try:
                raw = await self._poll()
                failures = 0
            except RetryAfter as error:
                await self._pause(seconds(error.retry_after))
                continue
            except Exception as error:  # network, server, or a reply we cannot read: retry
                failures += 1
                log.warning("getUpdates failed (%d): %r", failures, error)
                await self._pause(min(30.0, 0.5 * 2**failures))
                continue
            if raw is None:
                break
            if raw:
                await self.processor.process_batch(await self.processor.parse(raw))
                self.offset = max(int(item["update_id"]) for item in raw) + 1
        await self._confirm()

    async def _poll(self) -> list[dict[str, Any]] | None:
        """One getUpdates as raw JSON; None when stop was requested while waiting."""
        params: dict[str, Any] = {
            "timeout": self.poll_timeout_s,
            "allowed_updates": Update.ALL_TYPES,
        }
        if self.offset is not None:
            params["offset"] = self.offset
        fetch = asyncio.ensure_future(
            self.bot.do_api_request(
                "getUpdates", api_kwargs=params, read_timeout=self.poll_timeout_s + 10
            )
        )
        stop = asyncio.ensure_future(self.stopping.wait())
        done, _ = await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if fetch not in done:
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, TelegramError):
                await fetch
            return None
        return [item for item in fetch.result() if isinstance(item, dict) and "update_id" in item]

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    async def _confirm(self) -> None:
        """Tell the server the last processed batch is done (offset past it)."""
        if self.offset is None:
            return
        with contextlib.suppress(TelegramError):
            await self.bot.get_updates(offset=self.offset, timeout=0, limit=1)


def seconds(value: Any) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB settings."""
    return float(value.total_seconds()) if hasattr(value, "total_seconds") else float(value)


def updates_from(raw: Sequence[dict[str, Any]], app: Application) -> list[Update]:  # type: ignore[type-arg]
    """Parse raw update JSON (dead letters, webhook bodies) into Update objects."""
    return [u for u in (Update.de_json(item, app.bot) for item in raw) if u is not None]
