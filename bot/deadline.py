"""Each update's deadline, reachable from anywhere inside its processing (a context var)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator

_current: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "memorybot_deadline", default=None
)


@contextlib.asynccontextmanager
async def deadline(seconds: float) -> AsyncIterator[None]:
    """Raise TimeoutError in the block after `seconds`, plus whatever `extend_deadline` adds."""
    async with asyncio.timeout(seconds) as scope:
        token = _current.set(scope)
        try:
            yield
        finally:
            _current.reset(token)


def extend_deadline(seconds: float) -> None:
    """Give the current update `seconds` more: it waits for a reason (a send limit), it is
    not hung. Outside an update this does nothing."""
    scope = _current.get()
    if scope is not None and (when := scope.when()) is not None:
        scope.reschedule(when + seconds)
