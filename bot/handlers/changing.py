"""Changing memories: /edit, /forget, the Undo and 🗑 buttons, and /export."""

from __future__ import annotations

import contextlib

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden

from bot import exporting
from bot.actors import Actor, actor_of
from bot.context import BotContext
from bot.handlers.common import NOT_AUTHOR, command_payload, pressed, reply, warn
from bot.handlers.guards import group_admin_or_refuse, may_change, refuse_change
from bot.keyboards import Button, Callback
from engine.clock import utcnow
from engine.errors import InvalidInput
from engine.memory import Memory

START_FIRST = "Start me in a private chat first, then /export again."
NO_FILES_FOR_ANONYMOUS = (
    "I can't send files to an anonymous admin. Turn off “Remain anonymous”, or ask an admin "
    "who is not anonymous to /export."
)


async def _changeable(update: Update, context: BotContext, ref: str) -> Memory | None:
    """The memory `ref` names in this chat's space, if the actor may change it.

    Who may is checked before the quota is counted: a refusal costs nothing. Otherwise the
    reason is replied and None returned.
    """
    services = context.services
    actor = actor_of(update)
    try:
        memory = await services.engine.reads.resolve(space_id=actor.space_id, ref=ref)
    except InvalidInput as error:
        await warn(update, error)
        return None
    if not await may_change(context, actor, memory):
        await refuse_change(update)
        return None
    if await services.permit(update, write=True) is None:
        return None
    return memory


async def edit_command(update: Update, context: BotContext) -> None:
    """/edit id text — replace a memory's text (in a group: its author or an admin)."""
    message = update.effective_message
    assert message is not None
    ref, _, text = command_payload(message).partition(" ")
    if not ref or not text.strip():
        await reply(update, "Usage: /edit <i>id</i> <i>new text</i>, e.g. /edit 3f2a9c1b oat milk")
        return
    memory = await _changeable(update, context, ref)
    if memory is None:
        return
    try:
        memory = await context.services.engine.writes.edit(
            space_id=memory.space_id, memory_id=memory.id, text=text
        )
    except InvalidInput as error:
        await warn(update, error)
        return
    await reply(update, f"✏️ Updated <code>{memory.short_id}</code>.")


async def forget_command(update: Update, context: BotContext) -> None:
    """/forget id — forget one memory (in a group: its author or an admin)."""
    message = update.effective_message
    assert message is not None
    ref = command_payload(message)
    if not ref:
        await reply(update, "Usage: /forget <i>id</i> — the id is shown by /list and /recall.")
        return
    memory = await _changeable(update, context, ref.split()[0])
    if memory is None:
        return
    try:
        await context.services.engine.writes.forget(space_id=memory.space_id, memory_id=memory.id)
    except InvalidInput as error:
        await warn(update, error)
        return
    await reply(update, f"🗑 Forgot <code>{memory.short_id}</code>.")


async def forget_pressed(update: Update, context: BotContext, callback: Callback) -> str:
    """Undo under a save, or 🗑 under a recall result: forget that memory; returns the note."""
    services = context.services
    actor = actor_of(update)
    memory = await services.engine.reads.resolve(space_id=actor.space_id, ref=callback.arg)
    if not await may_change(context, actor, memory):
        return NOT_AUTHOR  # checked before the quota: a refusal costs nothing
    if await services.permit(update, write=True) is None:
        return "Not allowed"
    await services.engine.writes.forget(space_id=actor.space_id, memory_id=memory.id)
    if callback.button == Button.UNDO_SAVE:
        await pressed(update).edit_message_text(
            f"↩️ Undone: <code>{memory.short_id}</code> forgotten.", parse_mode=ParseMode.HTML
        )
    return f"🗑 Forgot {memory.short_id}"


async def export_command(update: Update, context: BotContext) -> None:
    """/export — the chat's memories as JSON files (from a group: to the admin, privately)."""
    if actor_of(update).anonymous:
        await reply(update, NO_FILES_FOR_ANONYMOUS)
        return
    if not await group_admin_or_refuse(update, context, "export"):
        return
    actor = await context.services.permit(update, write=False)
    if actor is None:
        return
    try:
        count = await send_export(context, actor)
    except (Forbidden, BadRequest) as error:
        if actor.private or (isinstance(error, BadRequest) and "not found" not in str(error)):
            raise
        await reply(update, START_FIRST)
        return
    if actor.in_group:
        noun = "memory" if count == 1 else "memories"
        await reply(update, f"📬 I sent this group's {count} {noun} to you in a private chat.")


async def send_export(context: BotContext, actor: Actor) -> int:
    """Send the space's memories to the actor's private chat; returns how many."""
    memories = await context.services.engine.reads.export(space_id=actor.space_id)
    now = utcnow()
    parts = exporting.export_parts(memories, space_id=actor.space_id, now=now)
    try:
        for part in parts:
            await context.bot.send_document(
                chat_id=actor.id,
                document=part.file.read(),  # one part in memory at a time
                filename=exporting.part_name(now, part, len(parts)),
                caption=exporting.part_caption(part, len(parts)),
            )
    finally:
        for part in parts:
            with contextlib.suppress(OSError):
                part.close()
    return len(memories)
