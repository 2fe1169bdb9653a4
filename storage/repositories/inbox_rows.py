"""What the inbox holds and hands out: received and claimed updates, and their statuses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

PENDING, DONE, PARKED = "pending", "done", "parked"


@dataclass(frozen=True)
class Received:
    """An update as it arrives: its id, the chat whose order it keeps, its raw JSON, and
    whether its chat was already told that it waits (by an intake holding it while SQL was
    down)."""

    update_id: int
    chat_id: int
    raw: dict[str, Any]
    notified: bool = False


@dataclass(frozen=True)
class Claimed:
    """A pending update leased to this worker."""

    update_id: int
    chat_id: int
    raw: dict[str, Any] | None
    attempts: int
    received_at: datetime
