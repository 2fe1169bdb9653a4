"""Broadcast: preview with Send/Cancel, progress edits, /broadcast_status, /broadcast_cancel."""

from __future__ import annotations

import secrets

from telegram import Update

from bot.actors import actor_of
from bot.context import BotContext
from bot.conversations import Awaiting
from bot.handlers.admin import REFUSAL, admin_only, is_admin
from bot.handlers.common import EXPIRED, command_payload, number_in, pressed, reply
from bot.keyboards import Button, Callback, broadcast_keyboard
from bot.replies import esc, preview
from engine.admin import Role
from engine.broadcast_types import BroadcastProgress


def progress_text(progress: BroadcastProgress, rate: float, *, final: bool = False) -> str:
    """The admin's live view of one broadcast."""
    head = "✅ Broadcast" if final and progress.status == "done" else "📣 Broadcast"
    if progress.status == "cancelled":
        head = "🛑 Broadcast (cancelled)"
    eta = f" · ETA {progress.eta_s(rate):.0f}s" if progress.pending and not final else ""
    return (
        f"{head} #{progress.id} to {progress.total} users\n"
        f"sent {progress.sent} · failed {progress.failed} · blocked {progress.blocked} · "
        f"remaining {progress.pending}{eta}"
    )


@admin_only
async def broadcast_command(update: Update, context: BotContext) -> None:
    """/broadcast text — preview first; or /broadcast alone, then the text."""
    text = command_payload(update.effective_message) if update.effective_message else ""
    if text:
        await show_preview(update, context, text)
        return
    actor = actor_of(update)  # a private chat: admin_only answers nowhere else
    await context.services.conversations.set(actor.space_id, actor.id, Awaiting.BROADCAST_TEXT)
    await reply(update, "What should I send to everyone? Send it as your next message.")


async def show_preview(update: Update, context: BotContext, text: str) -> None:
    """Show what would be sent and to how many (private chats only); nothing is queued
    before Send."""
    services = context.services
    if not await is_admin(update, context, "broadcast"):
        return
    text = text.replace("\x00", "")  # what is previewed is what is sent (and stored)
    admin = actor_of(update)
    nonce = secrets.token_hex(4)
    await services.conversations.set(
        admin.space_id, admin.id, Awaiting.BROADCAST_CONFIRMATION, {"nonce": nonce, "text": text}
    )
    count = await services.engine.broadcasts.recipients()
    await reply(
        update,
        f"📣 <b>Preview</b>: this goes to <b>{count}</b> active users.\n\n{esc(text)}",
        broadcast_keyboard(admin.id, nonce),
    )


async def broadcast_answered(update: Update, context: BotContext, callback: Callback) -> None:
    """Send / Cancel on a broadcast preview (admins only; others are refused and audited)."""
    query = pressed(update)
    assert query.message is not None
    services = context.services
    if not await _admin_press(update, context):
        await query.answer(REFUSAL)
        return
    chat_id = query.message.chat.id
    confirmed = await services.conversations.confirmation(
        chat_id, callback.owner, Awaiting.BROADCAST_CONFIRMATION, callback.arg
    )
    if confirmed is None:
        await query.answer(EXPIRED)
        return
    if callback.button == Button.CANCEL_BROADCAST:
        await services.conversations.clear(chat_id, callback.owner)
        await query.edit_message_text("Broadcast cancelled: nothing was sent.")
        await query.answer("Cancelled")
        return
    broadcast_id = await services.engine.broadcasts.create(  # the confirmation is cleared in
        author_id=callback.owner,  # the same transaction: one broadcast per confirmation
        text=str(confirmed.payload["text"]),
        progress_chat_id=chat_id,
        progress_message_id=query.message.message_id,
        also=services.conversations.clearing(chat_id, callback.owner),
    )
    await query.edit_message_text(f"📣 Broadcast #{broadcast_id} queued…")
    services.wake_broadcasts()
    await query.answer("Sending")


async def _admin_press(update: Update, context: BotContext) -> bool:
    """True for admins in a private chat; anyone else's press is audited as refused (the
    caller answers)."""
    engine = context.services.engine
    actor = actor_of(update)
    if actor.private and await engine.admin.role_of(actor.id) == Role.ADMIN:
        return True
    await engine.admin.audit(action="refused:broadcast_button", actor_id=actor.id, success=False)
    return False


@admin_only
async def broadcast_status_command(update: Update, context: BotContext) -> None:
    """/broadcast_status — progress of the latest broadcasts."""
    engine = context.services.engine
    lines = []
    for broadcast_id in await engine.broadcasts.ids(limit=3):
        progress = await engine.broadcasts.progress(broadcast_id)
        if progress is not None:
            done = progress.status != "sending"
            lines.append(
                progress_text(progress, engine.settings.broadcast_rate, final=done)
                + f"\n“{esc(preview(progress.text)[:80])}”"
            )
    await reply(update, "\n\n".join(lines) or "No broadcasts yet.")


@admin_only
async def broadcast_cancel_command(update: Update, context: BotContext) -> None:
    """/broadcast_cancel [id] — stop a running broadcast (the latest if no id)."""
    services = context.services
    payload = command_payload(update.effective_message) if update.effective_message else ""
    target = number_in(payload)
    if payload.strip() and target is None:
        await reply(update, "Usage: /broadcast_cancel [<i>broadcast id</i>] (the latest if none)")
        return
    if target is None:
        running = await services.engine.broadcasts.ids(status="sending", limit=1)
        target = running[0] if running else None
    if target is None:
        await reply(update, "No broadcast is running.")
        return
    stopped = await services.engine.broadcasts.cancel(
        broadcast_id=target, actor_id=actor_of(update).id
    )
    services.wake_broadcasts()
    await reply(
        update,
        f"🛑 Broadcast #{target} cancelled."
        if stopped
        else f"Broadcast #{target} is not running.",
    )
