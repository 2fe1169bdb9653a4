"""Supervision: a long-running task that fails is logged and started again with backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.logsafe import log_failure
from engine.breaker import store_of

log = logging.getLogger("memorybot.supervisor")
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0


class ConfigurationError(Exception):
    """A setting is wrong: restarting cannot help, so the process exits."""


async def supervised(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    first_backoff_s: float = FIRST_BACKOFF_S,
    max_backoff_s: float = MAX_BACKOFF_S,
) -> None:
    """Run `run()` until it returns; when it raises, log and start it again after a backoff
    that doubles up to `max_backoff_s` (and resets once it ran `HEALTHY_AFTER_S`).

    A ConfigurationError and cancellation end it.
    """
    backoff = first_backoff_s
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await run()
        except ConfigurationError:
            raise
        except Exception as error:
            if loop.time() - started >= HEALTHY_AFTER_S:
                backoff = first_backoff_s
            store = store_of(error)
            if store is not None:  # an outage: the breakers handle it; no trace needed
                log.warning(
                    "task=%s paused: %s store unavailable; restart in %.1fs", name, store, backoff
                )
            else:
                log_failure(log, "task=%s failed; restart in %.1fs", name, backoff, error=error)
        else:
            return
        await asyncio.sleep(backoff)
        backoff = min(max_backoff_s, backoff * 2)
