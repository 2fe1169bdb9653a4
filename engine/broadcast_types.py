"""What a broadcast is made of: delivery statuses, its progress, one claimed delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

PENDING, SENT, FAILED, BLOCKED = "pending", "sent", "failed", "blocked"
SENDING, DONE, CANCELLED = "sending", "done", "cancelled"
CLAIMED = SENDING  # a delivery claimed by a worker, being sent (broadcasts use SENDING too)


@dataclass(frozen=True)
class BroadcastProgress:
    id: int
    status: str
    text: str
    total: int
    sent: int
    failed: int
    blocked: int
    pending: int
    created_at: datetime
    progress_chat_id: int | None
    progress_message_id: int | None

    def eta_s(self, rate: float) -> float:
        return self.pending / rate if rate > 0 else 0.0


@dataclass(frozen=True)
class Delivery:
    id: int
    broadcast_id: int
    user_id: int
    attempts: int
