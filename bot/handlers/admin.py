"""Admin commands: /stats, /role, /audit, /dlq — refused (neutrally, and audited) for others,
and only ever answered in a private chat (in a group they point there, showing nothing)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update

from bot.actors import actor_of
from bot.context import BotContext
from bot.handlers.common import PRIVATE_ONLY, command_payload, number_in, reply, warn
from bot.menus import menus_of
from bot.replies import esc
from engine.admin import Role
from engine.errors import InvalidInput

Handler = Callable[[Update, BotContext], Coroutine[Any, Any, None]]
REFUSAL = "Sorry, that command is not available."


async def is_admin(update: Update, context: BotContext, action: str) -> bool:
    """True for admins in a private chat; in a group everyone is pointed to a private chat;
    anyone else gets a neutral refusal and an audit entry."""
    actor = actor_of(update)
    if not actor.private:
        await reply(update, PRIVATE_ONLY)
        return False
    engine = context.services.engine
    if await engine.admin.role_of(actor.id) == Role.ADMIN:
        return True
    await engine.admin.audit(action=f"refused:{action}", actor_id=actor.id, success=False)
    await reply(update, REFUSAL)
    return False


def admin_only(handler: Handler) -> Handler:
    """Wrap an admin command handler with the role check."""

    @functools.wraps(handler)
    async def guarded(update: Update, context: BotContext) -> None:
        if await is_admin(update, context, handler.__name__.removesuffix("_command")):
            await handler(update, context)

    return guarded


@admin_only
async def stats_command(update: Update, context: BotContext) -> None:
    """/stats — users, memories, SQL vs Chroma, orphans, last sweep, dead letters, broadcasts."""
    engine = context.services.engine
    report = await engine.index.check()
    stats = await engine.admin.stats(report)
    await reply(
        update,
        "📊 <b>memorybot</b>\n"
        f"users: {stats.users_active} active, {stats.users_blocked} blocked\n"
        f"memories: {report.sql_count} in SQL, {report.vector_count} in Chroma\n"
        f"rows without vector: {len(report.missing)} · vectors without row: "
        f"{len(report.orphans)} · stale: {len(report.stale)}\n"
        f"expired, not yet removed: {report.expired_present}\n"
        f"last sweep: {esc(report.last_sweep_at or 'never')}\n"
        f"dead letters: {stats.dead_letters} · broadcasts running: {stats.broadcasts_running}",
    )


@admin_only
async def role_command(update: Update, context: BotContext) -> None:
    """/role <user_id|@username> <admin|user|viewer> — change a role (audited)."""
    parts = command_payload(update.effective_message).split() if update.effective_message else []
    roles = [r.value for r in Role]
    if len(parts) != 2 or parts[1].lower() not in roles:
        await reply(update, "Usage: /role <i>user_id|@username</i> <i>admin|user|viewer</i>")
        return
    try:
        target = await context.services.engine.admin.set_role(
            actor_id=actor_of(update).id, target=parts[0], role=Role(parts[1].lower())
        )
    except InvalidInput as error:  # UnknownTarget, AmbiguousTarget (asks for the numeric id)
        await warn(update, error)
        return
    await reply(update, f"✅ User {target} is now {parts[1].lower()}.")
    await menus_of(context.bot_data).apply(context.bot, target, parts[1].lower())  # never raises


@admin_only
async def audit_command(update: Update, context: BotContext) -> None:
    """/audit [n] — the latest audit entries."""
    payload = command_payload(update.effective_message) if update.effective_message else ""
    count = number_in(payload) or 10
    entries = await context.services.engine.admin.latest_audit(limit=max(1, min(count, 50)))
    lines = [
        f"{e.at:%m-%d %H:%M} {'✅' if e.success else '⛔'} {esc(e.action)} "
        f"by {e.actor_id or '-'} on {esc(e.target or '-')}"
        for e in entries
    ]
    await reply(update, "🧾 <b>Audit</b>\n" + ("\n".join(lines) or "(empty)"))


@admin_only
async def dlq_command(update: Update, context: BotContext) -> None:
    """/dlq — updates that kept failing (replay with `memorybot dlq replay`)."""
    letters = await context.services.ledger.dead_letters(limit=10)
    lines = [
        f"#{letter.id} update {letter.update_id} chat {letter.chat_id}: {esc(letter.error[:80])}"
        for letter in letters
    ]
    await reply(update, "📮 <b>Dead letters</b>\n" + ("\n".join(lines) or "none"))
