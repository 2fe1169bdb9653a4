"""At-least-once intake: poll a batch, process it (see bot.processing), then confirm it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from typing import Any

from telegram import Update
from telegram.error import RetryAfter, TelegramError
from telegram.warnings import PTBUserWarning

from bot.logsafe import describe_error
from bot.processing import UpdateProcessor, updates_from

__all__ = ["POLL_TIMEOUT_S", "PollingIntake", "UpdateProcessor", "seconds", "updates_from"]

log = logging.getLogger("memorybot.intake")
# We fetch getUpdates raw on purpose: one update PTB cannot parse must not block the others.
warnings.filterwarnings("ignore", message=r".*Bot\.getUpdates.*", category=PTBUserWarning)
POLL_TIMEOUT_S = 10


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
                log.warning("getUpdates failed (%d): %s", failures, describe_error(error))
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
