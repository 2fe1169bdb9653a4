"""Waiting that never swallows a cancellation.

Python 3.11's `asyncio.wait_for` can lose a `cancel()` that arrives just as the awaited future
completes (fixed in 3.12): a loop like `while not stopping: wait_for(wake.wait(), t)` then
keeps running after the event loop asked every task to stop, and `asyncio.Runner.close` hangs.
`asyncio.timeout` counts cancellations (`Task.uncancel`) and has no such race.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` passed; True if it was set."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def settle(task: asyncio.Future[Any]) -> None:
    """Wait for `task` to finish, whatever its outcome, without catching our own cancellation."""
    await asyncio.wait({task})
