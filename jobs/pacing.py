"""The broadcast's pace: at most `rate` sends in any window of WINDOW_S, paused on a 429."""

from __future__ import annotations

import asyncio
import collections
import time

WINDOW_S = 1.1  # over a second: send-time jitter on a loaded box must not overfill any second


class SlidingWindow:
    """At most `rate` acquisitions in any window of WINDOW_S; `pause` holds everyone back."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._times: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._resume_at:
                    await asyncio.sleep(self._resume_at - now)
                    continue
                if self.rate <= 0:
                    return
                while self._times and now - self._times[0] >= WINDOW_S:
                    self._times.popleft()
                if len(self._times) < self.rate:
                    self._times.append(now)
                    return
                await asyncio.sleep(WINDOW_S - (now - self._times[0]))
