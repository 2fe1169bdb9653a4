"""Saving: /save, plain text, captions, edited messages, /edit, /forget and /export."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from telegram import Update

from bot.handlers.broadcast import AWAITING_BROADCAST, show_preview
from bot.handlers.common import command_payload, message_text, reply
from bot.handlers.searching import run_recall
from bot.keyboards import undo_keyboard
from bot.replies import esc
from bot.services import Context, services
from bot.ttl import BadTtl, describe, split_ttl
from engine.errors import InvalidInput
from storage.models import utcnow

AWAITING_SAVE = "awaiting_save"
AWAITING_RECALL = "awaiting_recall"


async def save_text(update: Update, context: Context, text: str, ttl: timedelta | None) -> None:
    """Save `text` from this message (idempotent on chat and message id) and confirm."""
    found = services(context)
    message = update.effective_message
    assert message is not None
    user_id = await found.permit(update, write=True, stores=True)
    if user_id is None:
        return
    try:
        result = await found.engine.memories.save(
            user_id=user_id,
            text=text,
            chat_id=message.chat_id,
            message_id=message.message_id,
            expires_at=utcnow() + ttl if ttl else None,
        )
    except InvalidInput as error:
        await reply(update, f"⚠️ {esc(str(error))}")
        return
    memory = result.memory
    same_message = (memory.chat_id, memory.message_id) == (message.chat_id, message.message_id)
    if not result.created and not same_message:
        await reply(update, f"Already saved as <code>{memory.short_id}</code>.")
        return
    until = f" for {describe(ttl)}" if ttl else ""
    await reply(
        update,
        f"✅ Saved <code>{memory.short_id}</code>{until}.",
        undo_keyboard(user_id, memory.short_id),
    )


async def save_command(update: Update, context: Context) -> None:
    """/save [ttl] text — or /save alone, then the text."""
    message = update.effective_message
    assert message is not None
    try:
        ttl, text = split_ttl(command_payload(message))
    except BadTtl as error:
        await reply(update, f"⚠️ {esc(str(error))}")
        return
    if text:
        await save_text(update, context, text, ttl)
        return
    found = services(context)
    user_id = await found.ensure_user(update)
    payload = {"ttl_s": int(ttl.total_seconds())} if ttl else {}
    await found.conversations.set(user_id, AWAITING_SAVE, payload)
    await reply(update, "What should I remember? Send it as your next message (/cancel to stop).")


async def plain_message(update: Update, context: Context) -> None:
    """Text or caption: completes a pending /save or /recall, else saves (private chats)."""
    message = update.effective_message
    assert message is not None
    found = services(context)
    user_id = await found.ensure_user(update)
    text = message_text(message)
    if message.caption and text.startswith("/"):
        await caption_command(update, context, text)
        return
    pending = await found.conversations.get(user_id)
    if pending is not None and pending.state == AWAITING_RECALL:
        await found.conversations.clear(user_id)
        await run_recall(update, context, text)
        return
    if pending is not None and pending.state == AWAITING_BROADCAST:
        await found.conversations.clear(user_id)
        await show_preview(update, context, text)
        return
    ttl = None
    if pending is not None and pending.state == AWAITING_SAVE:
        await found.conversations.clear(user_id)
        seconds = pending.payload.get("ttl_s")
        ttl = timedelta(seconds=int(seconds)) if seconds else None
    elif message.chat.type != "private":
        return
    await save_text(update, context, text, ttl)


async def caption_command(update: Update, context: Context, caption: str) -> None:
    """A photo or file captioned with /save or /recall works like the command."""
    name = caption[1:].split(maxsplit=1)[0].split("@")[0].lower() if len(caption) > 1 else ""
    if name == "save":
        await save_command(update, context)
    elif name in ("recall", "search"):
        message = update.effective_message
        assert message is not None
        await run_recall(update, context, command_payload(message))
    else:
        await reply(update, "In a caption I understand /save and /recall; see /help.")


async def edited_message(update: Update, context: Context) -> None:
    """An edited chat message updates the memory made from it."""
    message = update.edited_message
    if message is None or not message_text(message) or message.from_user is None:
        return
    text = message_text(message)
    if text.startswith("/"):
        if not re.match(r"/save(@\w+)?(\s|$)", text):
            return  # an edited /recall or /list changes no memory
        try:
            text = split_ttl(command_payload(message))[1]
        except BadTtl:
            text = command_payload(message)
    found = services(context)
    if await found.permit(update, write=True) is None:
        return
    try:
        memory = await found.engine.memories.edit_by_source(
            user_id=message.from_user.id,
            chat_id=message.chat_id,
            message_id=message.message_id,
            text=text,
        )
    except InvalidInput as error:
        await reply(update, f"⚠️ {esc(str(error))}")
        return
    if memory is not None:
        await reply(update, f"✏️ Updated <code>{memory.short_id}</code>.")


async def edit_command(update: Update, context: Context) -> None:
    """/edit id text — replace a memory's text."""
    message = update.effective_message
    assert message is not None
    ref, _, text = command_payload(message).partition(" ")
    if not ref or not text.strip():
        await reply(update, "Usage: /edit <i>id</i> <i>new text</i>, e.g. /edit 3f2a9c1b oat milk")
        return
    found = services(context)
    user_id = await found.permit(update, write=True)
    if user_id is None:
        return
    try:
        memory = await found.engine.memories.resolve(user_id=user_id, ref=ref)
        memory = await found.engine.memories.edit(user_id=user_id, memory_id=memory.id, text=text)
    except InvalidInput as error:
        await reply(update, f"⚠️ {esc(str(error))}")
        return
    await reply(update, f"✏️ Updated <code>{memory.short_id}</code>.")


async def forget_command(update: Update, context: Context) -> None:
    """/forget id — forget one memory."""
    message = update.effective_message
    assert message is not None
    ref = command_payload(message)
    if not ref:
        await reply(update, "Usage: /forget <i>id</i> — the id is shown by /list and /recall.")
        return
    found = services(context)
    user_id = await found.permit(update, write=True)
    if user_id is None:
        return
    try:
        memory = await found.engine.memories.resolve(user_id=user_id, ref=ref.split()[0])
        await found.engine.memories.forget(user_id=user_id, memory_id=memory.id)
    except InvalidInput as error:
        await reply(update, f"⚠️ {esc(str(error))}")
        return
    await reply(update, f"🗑 Forgot <code>{memory.short_id}</code>.")


async def export_command(update: Update, context: Context) -> None:
    """/export — every memory as a JSON document."""
    found = services(context)
    user_id = await found.ensure_user(update)
    memories = await found.engine.memories.export(user_id=user_id)
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
