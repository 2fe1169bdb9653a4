"""Connect the broadcast worker (jobs.delivery) to Telegram: errors mapped, progress edited."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from telegram import Bot
from telegram.error import BadRequest, Forbidden, RetryAfter

from bot.context import BotApplication
from bot.handlers.broadcast import progress_text
from bot.intake import seconds
from bot.limiter import ChatRateLimiter
from engine.app import MemoryEngine
from engine.broadcast_types import BroadcastProgress
from jobs.delivery import BroadcastWorker
from jobs.sending import Blocked, RetryLater

GONE = ("chat not found", "user is deactivated", "bot was kicked", "peer_id_invalid")


@contextlib.contextmanager
def send_errors_mapped() -> Iterator[None]:
    """Telegram's refusals of a send as the delivery workers read them: Blocked, RetryLater."""
    try:
        yield
    except Forbidden as error:
        raise Blocked(str(error)) from error
    except RetryAfter as error:
        raise RetryLater(seconds(error.retry_after)) from error
    except BadRequest as error:
        if any(reason in str(error).lower() for reason in GONE):
            raise Blocked(str(error)) from error
        raise


def broadcast_worker(
    app: BotApplication,
    engine: MemoryEngine,
    sender: Bot,
) -> BroadcastWorker:
    """A worker that sends through `sender` and edits the admin's preview with progress.

    `sender` has no rate limiter of its own: a 429 must reach the worker, which then pauses
    every send (PTB's limiter would retry it on its own, outside the broadcast's rate). Each
    send still takes a spare slot of the bot's overall budget (`ChatRateLimiter`), so replies
    and broadcast together keep to Telegram's limit and replies go first.
    """
    rate = engine.settings.broadcast_rate
    limiter = app.bot.rate_limiter
    budget = limiter if isinstance(limiter, ChatRateLimiter) else None

    async def send(user_id: int, text: str) -> None:
        if budget is not None:
            await budget.spare_slot()
        with send_errors_mapped():
            await sender.send_message(user_id, text)

    def pace() -> float:
        """Sends per second the broadcast can reach now (for the ETA)."""
        share = budget.spare_per_second if budget is not None else None
        return rate if share is None else min(rate, share)

    async def report(progress: BroadcastProgress, final: bool) -> None:
        if progress.progress_chat_id is None or progress.progress_message_id is None:
            return
        with contextlib.suppress(BadRequest):  # "message is not modified"
            await app.bot.edit_message_text(
                progress_text(progress, pace(), final=final),
                chat_id=progress.progress_chat_id,
                message_id=progress.progress_message_id,
            )

    return BroadcastWorker(
        leadership=engine.stores.leadership,
        broadcasts=engine.broadcasts,
        send=send,
        rate=rate,
        report=report,
    )
