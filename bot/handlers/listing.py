"""Listing: /list (optionally by #tag and time), its page buttons, and /tags.

Everything acts on the space of the chat the command was sent (or the button pressed) in.
"""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.filtering import (
    FILTER_MARK,
    Asked,
    asked,
    filtered_list_text,
    tags_text,
)
from bot.handlers.common import (
    EXPIRED,
    command_payload,
    edit_quietly,
    pressed,
    reply,
    warn,
)
from bot.keyboards import Callback, list_keyboard
from bot.memos import Shown
from bot.replies import esc, list_text, preview
from engine.clock import utcnow
from engine.errors import InvalidInput
from engine.memory import is_personal

LIST_PAGE = 10
LIST_USAGE = (
    "⚠️ /list shows memories by #tag and time, e.g. <code>/list #work last week</code> or "
    "<code>/list since 2026-10-01</code>; I could not read “{rest}” as either.\n"
    "To search by meaning, use /recall {rest}"
)


async def list_command(update: Update, context: BotContext) -> None:
    """/list [#tags] [time] — a page of this chat's memories (those kept), newest first."""
    services = context.services
    actor = await services.permit(update, write=False)
    if actor is None:
        return
    message = update.effective_message
    assert message is not None
    raw = command_payload(message)
    try:
        query = await asked(services.engine.users, actor.id, raw, anonymous=actor.anonymous)
        parsed = query.parsed()
    except InvalidInput as error:
        await warn(update, error)
        return
    if parsed.text:
        await reply(update, LIST_USAGE.format(rest=esc(preview(parsed.text))))
        return
    text, keyboard = await render_list(context, actor.space_id, actor.id, query, 0)
    sent = await reply(update, text, keyboard)
    if sent is not None and not parsed.wanted.empty:
        services.recalls.remember(  # written behind (bot.memos)
            actor.space_id, actor.id, sent.message_id, query.encode(), Shown.LIST
        )


async def render_list(
    context: BotContext, space_id: int, owner: int, query: Asked, offset: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of /list (filtered by `query`) from `offset`, with `owner`'s page buttons."""
    parsed = query.parsed()
    page = await context.services.engine.reads.page(
        space_id=space_id, offset=offset, limit=LIST_PAGE, wanted=parsed.wanted
    )
    keyboard = list_keyboard(owner, offset=offset, limit=LIST_PAGE, total=page.total)
    if parsed.wanted.empty:
        text = list_text(page.items, offset, page.total, group=not is_personal(space_id))
    else:
        text = filtered_list_text(parsed, page.items, offset, page.total, "list")
    return text, keyboard


async def list_page(update: Update, context: BotContext, callback: Callback) -> str:
    """◀ Newer / Older ▶ under /list: show that page (with the same filter) in the same message."""
    query = pressed(update)
    assert query.message is not None
    space, message_id = query.message.chat.id, query.message.message_id
    memo = await context.services.recalls.query_for(space, callback.owner, message_id, Shown.LIST)
    shown = getattr(query.message, "text", None) or ""
    if memo is None and shown.startswith(FILTER_MARK):
        return EXPIRED  # a filtered list whose filter a newer /list replaced
    asked_for = Asked.decode(memo) if memo else Asked("", utcnow(), None)
    text, keyboard = await render_list(
        context, space, callback.owner, asked_for, int(callback.arg)
    )
    await edit_quietly(query, text, keyboard)
    return ""


async def tags_command(update: Update, context: BotContext) -> None:
    """/tags — the #tags of this chat's memories, with how many memories carry each."""
    services = context.services
    actor = await services.permit(update, write=False)
    if actor is None:
        return
    counts = await services.engine.reads.tags(space_id=actor.space_id)
    await reply(update, tags_text(counts, group=actor.in_group))
