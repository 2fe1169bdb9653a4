"""Saving: /save (with or without the text), and edits of the messages memories came from."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from telegram import Update

from bot.actors import actor_of, topic_of
from bot.context import BotContext
from bot.conversations import Awaiting
from bot.handlers.common import ask, command_payload, message_text, reply, warn
from bot.handlers.saved import saved_reply
from bot.ttl import BadTtl, split_ttl
from engine.clock import utcnow
from engine.errors import InvalidInput
from engine.uow import InSameUnit, in_turn

SAVE_COMMAND = re.compile(r"/save(@\w+)?(\s|$)")  # /save, /save@bot, with or without text
SAVE_PROMPT = (
    "What should I remember for this group? Reply to this message with the text (/cancel to stop)."
)


async def save_text(
    update: Update,
    context: BotContext,
    text: str,
    ttl: timedelta | None,
    *,
    also: InSameUnit | None = None,
) -> None:
    """Save `text` from this message into the chat's space (idempotent on chat and message id)
    and confirm; `also` runs in the save's unit of work (clearing the prompt it answers)."""
    services = context.services
    message = update.effective_message
    assert message is not None
    services.engine.writes.prefetch(text)  # the model runs while permissions are checked
    actor = await services.permit(update, write=True, stores=True, carry=True)
    if actor is None:
        return
    try:
        result = await services.engine.writes.save(
            space_id=actor.space_id,
            author_id=actor.id,
            topic_id=topic_of(message),
            text=text,
            chat_id=message.chat_id,
            message_id=message.message_id,
            expires_at=utcnow() + ttl if ttl else None,
            space_count=actor.held,
            also=in_turn(services.carried_user(update), also),  # a newcomer: registered too
        )
    except InvalidInput as error:
        await warn(update, error)
        return
    memory = result.memory
    same_message = (memory.chat_id, memory.message_id) == (message.chat_id, message.message_id)
    if not result.created and not same_message:
        await reply(update, f"Already saved as <code>{memory.short_id}</code>.")
        return
    await reply(update, *await saved_reply(update, context, result, ttl))


async def save_command(update: Update, context: BotContext) -> None:
    """/save [ttl] text — or /save alone, then the text."""
    message = update.effective_message
    assert message is not None
    try:
        ttl, text = split_ttl(command_payload(message))
    except BadTtl as error:
        await warn(update, error)
        return
    if text:
        await save_text(update, context, text, ttl)
        return
    payload = {"ttl_s": int(ttl.total_seconds())} if ttl else {}
    await ask(
        update,
        context,
        Awaiting.SAVE_TEXT,
        payload,
        private="What should I remember? Send it as your next message (/cancel to stop).",
        group=SAVE_PROMPT,
        placeholder="What should I remember?",
    )


def pending_ttl(payload: dict[str, Any]) -> timedelta | None:
    """The TTL a pending /save was given (`Awaiting.SAVE_TEXT` keeps it as `ttl_s`)."""
    seconds = payload.get("ttl_s")
    return timedelta(seconds=int(seconds)) if seconds else None


async def edited_message(update: Update, context: BotContext) -> None:
    """An edited chat message updates the memory made from it (other edits cost nothing)."""
    message = update.edited_message
    if message is None or not message_text(message) or message.from_user is None:
        return
    text = message_text(message)
    if text.startswith("/"):
        if not SAVE_COMMAND.match(text):
            return  # an edited /recall or /list changes no memory
        try:
            text = split_ttl(command_payload(message))[1]
        except BadTtl:
            text = command_payload(message)
    services = context.services
    actor = actor_of(update)
    if not await services.is_memory_source(actor, message.chat_id, message.message_id):
        return
    if await services.permit(update, write=True) is None:
        return
    try:
        memory = await services.engine.writes.edit_by_source(
            author_id=actor.id,
            chat_id=message.chat_id,
            message_id=message.message_id,
            text=text,
        )
    except InvalidInput as error:
        await warn(update, error)
        return
    if memory is not None:
        await reply(update, f"✏️ Updated <code>{memory.short_id}</code>.")
