"""Changing memories: /edit, /forget, the Undo and 🗑 buttons, and /export."""

from __future__ import annotations

import json

from telegram import Update
from telegram.constants import ParseMode

from bot.context import BotContext
from bot.handlers.common import command_payload, pressed, reply, warn
from bot.keyboards import Button, Callback
from engine.clock import utcnow
from engine.errors import InvalidInput


async def edit_command(update: Update, context: BotContext) -> None:
    """/edit id text — replace a memory's text."""
    message = update.effective_message
    assert message is not None
    ref, _, text = command_payload(message).partition(" ")
    if not ref or not text.strip():
        await reply(update, "Usage: /edit <i>id</i> <i>new text</i>, e.g. /edit 3f2a9c1b oat milk")
        return
    services = context.services
    user_id = await services.permit(update, write=True)
    if user_id is None:
        return
    try:
        memory = await services.engine.reads.resolve(user_id=user_id, ref=ref)
        memory = await services.engine.writes.edit(user_id=user_id, memory_id=memory.id, text=text)
    except InvalidInput as error:
        await warn(update, error)
        return
    await reply(update, f"✏️ Updated <code>{memory.short_id}</code>.")


async def forget_command(update: Update, context: BotContext) -> None:
    """/forget id — forget one memory."""
    message = update.effective_message
    assert message is not None
    ref = command_payload(message)
    if not ref:
        await reply(update, "Usage: /forget <i>id</i> — the id is shown by /list and /recall.")
        return
    services = context.services
    user_id = await services.permit(update, write=True)
    if user_id is None:
        return
    try:
        memory = await services.engine.reads.resolve(user_id=user_id, ref=ref.split()[0])
        await services.engine.writes.forget(user_id=user_id, memory_id=memory.id)
    except InvalidInput as error:
        await warn(update, error)
        return
    await reply(update, f"🗑 Forgot <code>{memory.short_id}</code>.")


async def forget_pressed(update: Update, context: BotContext, callback: Callback) -> str:
    """Undo under a save, or 🗑 under a recall result: forget that memory; returns the note."""
    services = context.services
    if await services.permit(update, write=True) is None:
        return "Not allowed"
    owner = callback.owner
    memory = await services.engine.reads.resolve(user_id=owner, ref=callback.arg)
    await services.engine.writes.forget(user_id=owner, memory_id=memory.id)
    if callback.button == Button.UNDO_SAVE:
        await pressed(update).edit_message_text(
            f"↩️ Undone: <code>{memory.short_id}</code> forgotten.", parse_mode=ParseMode.HTML
        )
    return f"🗑 Forgot {memory.short_id}"


async def export_command(update: Update, context: BotContext) -> None:
    """/export — every memory as a JSON document."""
    services = context.services
    user_id = await services.ensure_user(update)
    memories = await services.engine.reads.export(user_id=user_id)
    document = {
        "exported_at": utcnow().isoformat(),
        "user_id": user_id,
        "count": len(memories),
        "memories": [
            {
                "id": str(m.id),
                "text": m.text,
                "created_at": m.created_at.isoformat(),
                "updated_at": m.updated_at.isoformat(),
                "expires_at": m.expires_at.isoformat() if m.expires_at else None,
            }
            for m in memories
        ],
    }
    chat = update.effective_chat
    assert chat is not None
    await chat.send_document(
        document=json.dumps(document, ensure_ascii=False, indent=2).encode(),
        filename=f"memorybot-export-{utcnow():%Y%m%d}.json",
        caption=f"{len(memories)} memories",
    )
