"""Shared by the inbox tests: a hand-moved clock for `engine.inbox` and an update (the
`clock` and `stores` fixtures are in tests/unit/conftest.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.clock import utcnow
from engine.inbox import Received


class Clock:
    """The inbox's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def received(update_id: int, chat_id: int, *, notified: bool = False) -> Received:
    raw = {"update_id": update_id, "message": {"chat": {"id": chat_id}, "text": f"#{update_id}"}}
    return Received(update_id, chat_id, raw, notified=notified)
