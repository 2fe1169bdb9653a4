"""Who may do what in a group: authors and group administrators (asked of Telegram)."""

from __future__ import annotations

from telegram import Update

from bot.actors import Actor, actor_of
from bot.context import BotContext
from bot.handlers.common import NOT_AUTHOR, admin_only_here, reply
from engine.memory import Memory


async def may_change(context: BotContext, actor: Actor, memory: Memory) -> bool:
    """The memory's author, anyone in their own private chat, or a group administrator."""
    if actor.private or memory.author_id == actor.id:
        return True
    return await context.services.administers(context.bot, actor)


async def refuse_change(update: Update) -> None:
    """Tell a member that only the author or an administrator changes this memory."""
    await reply(update, f"⚠️ {NOT_AUTHOR}")


async def group_admin_or_refuse(update: Update, context: BotContext, command: str) -> bool:
    """In a group, True only for its administrators (others get a short refusal); True in
    private chats."""
    actor = actor_of(update)
    if actor.private or await context.services.administers(context.bot, actor):
        return True
    await reply(update, f"⚠️ {admin_only_here(command)}")
    return False
