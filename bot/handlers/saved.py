"""The "✅ Saved" reply: when a TTL deletes the memory, a near duplicate and its buttons."""

from __future__ import annotations

import contextlib
from datetime import UTC, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.actors import actor_of
from bot.context import BotContext
from bot.handlers.common import NOT_AUTHOR, pressed
from bot.handlers.guards import may_change
from bot.keyboards import Button, Callback, button, undo_keyboard
from bot.ttl import describe
from engine.memory import SaveResult

REF = 16  # hex digits of a memory id in these buttons (two fit in one argument)


async def zone_of(update: Update, context: BotContext) -> tuple[tzinfo, str]:
    """The sender's time zone (UTC until they choose one) and its name."""
    if actor_of(update).anonymous:
        return UTC, "UTC"
    name = (await context.services.ensure_user(update)).timezone
    if name:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(name), name
    return UTC, "UTC"


async def saved_reply(
    update: Update, context: BotContext, result: SaveResult, ttl: timedelta | None
) -> tuple[str, InlineKeyboardMarkup]:
    """The confirmation of a new memory and its buttons (Undo; Keep both / Replace it)."""
    memory, twin = result.memory, result.near_duplicate
    owner = actor_of(update).id
    lines = [f"✅ Saved <code>{memory.short_id}</code>"]
    zone, zone_name = await zone_of(update, context)  # the update's user row: no extra read
    if ttl and memory.expires_at is not None:
        when = memory.expires_at.astimezone(zone)
        lines[0] += (
            f" — it will be deleted on {when:%Y-%m-%d %H:%M} {zone_name} (in {describe(ttl)})."
        )
    if twin is not None:
        similar = f"very similar to <code>{twin.short_id}</code> from "
        similar += f"{twin.created_at.astimezone(zone):%Y-%m-%d}."
        if ttl:
            lines.append(f"It is {similar}")
        else:
            lines[0] += f" — {similar}"
    if ttl:
        lines.append(
            f"Want a reminder instead? Use /remind in {describe(ttl)} <i>text</i> "
            "(a reminder is kept and sent to you then)."
        )
    elif twin is None:
        lines[0] += "."
    keyboard = undo_keyboard(owner, memory.short_id)
    if twin is not None:
        new, old = memory.id.hex[:REF], twin.id.hex[:REF]
        keyboard = InlineKeyboardMarkup(
            [
                [
                    button("Keep both", Button.KEEP_BOTH, owner, new),
                    button("Replace it", Button.REPLACE_OLD, owner, old + new),
                ],
                *keyboard.inline_keyboard,
            ]
        )
    return "\n".join(lines), keyboard


async def keep_both_pressed(update: Update, context: BotContext, callback: Callback) -> str:
    """[Keep both]: nothing changes; the choice buttons go (Undo stays)."""
    query = pressed(update)
    with contextlib.suppress(BadRequest):  # a double tap: not modified
        await query.edit_message_reply_markup(undo_keyboard(callback.owner, callback.arg[:8]))
    return "Kept both."


async def replace_pressed(update: Update, context: BotContext, callback: Callback) -> str:
    """[Replace it]: forget the older memory (its author or a group admin, as for 🗑)."""
    services = context.services
    actor = actor_of(update)
    old_ref, new_ref = callback.arg[:REF], callback.arg[REF:]
    older = await services.engine.reads.resolve(space_id=actor.space_id, ref=old_ref)
    if not await may_change(context, actor, older):
        return NOT_AUTHOR  # checked before the quota: a refusal costs nothing
    if await services.permit(update, write=True) is None:
        return "Not allowed"
    await services.engine.writes.forget(space_id=actor.space_id, memory_id=older.id)
    query = pressed(update)
    shown = query.message.text_html if isinstance(query.message, Message) else ""
    note = f"🗑 Replaced: <code>{older.short_id}</code> is forgotten."
    with contextlib.suppress(BadRequest):
        await query.edit_message_text(
            f"{shown}\n{note}" if shown else note,
            parse_mode=ParseMode.HTML,
            reply_markup=undo_keyboard(callback.owner, new_ref[:8]),
        )
    return f"🗑 Forgot {older.short_id}"
