"""A heartbeat on the event loop: how late its timers fire is how long other work held it.

Everything the bot does waits for the loop (every aiosqlite result, every HTTP reply), so
its lag under load is the first figure of issue 32. The bench reads the histogram
`memorybot_event_loop_lag_seconds` off /metrics around a burst.
"""

from __future__ import annotations

import asyncio

from engine.metrics import LOOP_LAG_SECONDS

INTERVAL_S = 0.1


async def probe_loop_lag(interval_s: float = INTERVAL_S) -> None:
    """Sleep `interval_s` again and again and record how late each wake-up came (until
    cancelled)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        LOOP_LAG_SECONDS.observe(max(0.0, loop.time() - due))
