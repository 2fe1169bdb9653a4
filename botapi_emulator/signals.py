"""Signal: wake every asyncio waiter when something changed, from any thread."""

from __future__ import annotations

import asyncio


class Signal:
    """Wake every waiter when something changed (safe to fire from any thread)."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def fire(self) -> None:
        """Wake all current waiters."""
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            fut.get_loop().call_soon_threadsafe(_resolve, fut)

    async def wait(self, seconds: float) -> None:
        """Wait until fired or `seconds` passed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait({fut}, timeout=max(seconds, 0.0))
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
