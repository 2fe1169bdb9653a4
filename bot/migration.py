"""A group upgraded to a supergroup: its space, states and memos follow it to the new chat id.

Telegram announces an upgrade twice: a message with `migrate_to_chat_id` in the old group and
one with `migrate_from_chat_id` in the new supergroup; either may come first, and each may be
redelivered. A send to the old id raises `ChatMigrated` (the rate limiter follows it to the
new id and calls `follow_in_background`). All of them run the same idempotent move.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop

from bot.context import BotContext
from bot.conversations import moving_chat_traces
from bot.logsafe import log_failure
from bot.services import BotServices

log = logging.getLogger("memorybot.bot")
_moving: set[asyncio.Task[int]] = set()  # moves started by a send, kept until they finish


def migration_of(message: Message) -> tuple[int, int] | None:
    """(old chat id, new chat id) if `message` is one of Telegram's two upgrade notices."""
    chat = message.chat
    if message.migrate_to_chat_id and chat.type == ChatType.GROUP:
        return chat.id, message.migrate_to_chat_id
    if message.migrate_from_chat_id and chat.type == ChatType.SUPERGROUP:
        return message.migrate_from_chat_id, chat.id
    return None


async def follow_migration(services: BotServices, old: int, new: int) -> int:
    """Move group `old`'s space and chat traces to `new`; how many memories moved."""
    moved = await services.engine.spaces.move(
        old=old, new=new, also=moving_chat_traces(old, new, services.recalls)
    )
    for chat_id in (old, new):  # cached states of either chat may be stale now
        services.conversations.let_go(chat_id)
    return moved


def follow_in_background(services: BotServices, old: int, new: int) -> None:
    """Start the move after a send met `ChatMigrated` (the send itself already followed)."""
    task = asyncio.get_running_loop().create_task(follow_migration(services, old, new))
    _moving.add(task)
    task.add_done_callback(_finished)


def _finished(task: asyncio.Task[int]) -> None:
    _moving.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        # The upgrade notices (and the next send to the old id) run the move again.
        log_failure(log, "moving a migrated group's space failed", error=error)


async def chat_migrated(update: Update, context: BotContext) -> None:
    """Telegram's upgrade notice: move the space, and nothing else handles this update."""
    message = update.effective_message
    found = migration_of(message) if message is not None else None
    if found is not None and found[0] < 0 and found[1] < 0 and found[0] != found[1]:
        moved = await follow_migration(context.services, *found)
        log.info("group upgraded old=%d new=%d memories_moved=%d", *found, moved)
    raise ApplicationHandlerStop
