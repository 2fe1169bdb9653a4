"""A writer in its own process, for crash tests: `python -m tests.integration.writer_process`.

Reads settings from the environment. Modes:
  save-then-die   save one memory, but SIGKILL itself between vector write and commit;
  ingest START N  ingest items START..N-1 for user 1, CHUNK concurrent saves at a time
                  (idempotent on chat 999 / message i), printing "ACK i" once a chunk is
                  committed; the test kills it at random moments.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from engine.app import open_engine
from engine.settings import load_settings
from engine.uow import UnitOfWork

CHUNK = 8
SOURCE_CHAT = 999


async def save_then_die() -> None:
    engine = await open_engine(load_settings())
    await engine.users.register(user_id=1)

    async def die(self: UnitOfWork) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    UnitOfWork._commit = die  # type: ignore[method-assign]
    print("READY", flush=True)
    await engine.writes.save(space_id=1, text="a save that never commits")


async def ingest(start: int, stop: int) -> None:
    engine = await open_engine(load_settings())
    await engine.users.register(user_id=1)
    print("READY", flush=True)
    for first in range(start, stop, CHUNK):
        last = min(stop, first + CHUNK)
        await asyncio.gather(
            *(
                engine.writes.save(
                    space_id=1, text=f"ingested item {i}", chat_id=SOURCE_CHAT, message_id=i
                )
                for i in range(first, last)
            )
        )
        print(f"ACK {last - 1}", flush=True)
    await engine.aclose()
    print("DONE", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "save-then-die":
        asyncio.run(save_then_die())
    else:
        asyncio.run(ingest(int(sys.argv[2]), int(sys.argv[3])))
