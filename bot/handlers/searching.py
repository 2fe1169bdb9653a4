"""Finding: /recall, /list and /forget_all, and the buttons on their replies."""

from __future__ import annotations

import secrets

from telegram import InlineKeyboardMarkup, Update

from bot.context import BotContext
from bot.conversations import Awaiting
from bot.handlers.common import EXPIRED, command_payload, edit_quietly, pressed, reply, warn
from bot.keyboards import (
    Button,
    Callback,
    confirm_keyboard,
    list_keyboard,
    recall_keyboard,
)
from bot.replies import list_text, recall_text
from engine.errors import InvalidInput

PAGE = 5
LIST_PAGE = 10
MAX_RESULTS = 50


async def render_recall(
    context: BotContext, user_id: int, question: str, start: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of results for `question` from `start`, with its buttons."""
    hits = await context.services.engine.reads.recall(
        user_id=user_id, query=question, k=min(start + PAGE + 1, MAX_RESULTS)
    )
    shown = hits[start : start + PAGE]
    keyboard = recall_keyboard(
        user_id,
        [hit.memory.short_id for hit in shown],
        start=start,
        more=len(hits) > start + PAGE,
    )
    return recall_text(question, shown, start), keyboard


async def run_recall(update: Update, context: BotContext, question: str) -> None:
    """Answer `question` with numbered results, delete buttons and a More button."""
    services = context.services
    user_id = await services.permit(update, write=False)
    if user_id is None:
        return
    try:
        text, keyboard = await render_recall(context, user_id, question, 0)
    except InvalidInput as error:
        await warn(update, error)
        return
    sent = await reply(update, text, keyboard)
    if sent is not None:
        await services.recalls.remember(user_id, sent.message_id, question)


async def recall_command(update: Update, context: BotContext) -> None:
    """/recall question (alias /search) — or alone, then the question."""
    message = update.effective_message
    assert message is not None
    question = command_payload(message)
    if question:
        await run_recall(update, context, question)
        return
    services = context.services
    await services.conversations.set(await services.ensure_user(update), Awaiting.RECALL_QUERY)
    await reply(update, "What are you looking for? Send it as your next message.")


async def recall_more(update: Update, context: BotContext, callback: Callback) -> str:
    """More ▶ under a recall: the next page of the same question, in the same message."""
    query = pressed(update)
    assert query.message is not None
    owner = callback.owner
    question = await context.services.recalls.query_for(owner, query.message.message_id)
    if question is None:
        return EXPIRED
    body, keyboard = await render_recall(context, owner, question, int(callback.arg))
    await edit_quietly(query, body, keyboard)
    return ""


async def list_command(update: Update, context: BotContext) -> None:
    """/list — a page of memories, newest first."""
    services = context.services
    user_id = await services.permit(update, write=False)
    if user_id is None:
        return
    page = await services.engine.reads.page(user_id=user_id, limit=LIST_PAGE)
    keyboard = list_keyboard(user_id, offset=0, limit=LIST_PAGE, total=page.total)
    await reply(update, list_text(page.items, 0, page.total), keyboard)


async def list_page(update: Update, context: BotContext, callback: Callback) -> str:
    """◀ Newer / Older ▶ under /list: show that page in the same message."""
    owner, offset = callback.owner, int(callback.arg)
    page = await context.services.engine.reads.page(user_id=owner, offset=offset, limit=LIST_PAGE)
    keyboard = list_keyboard(owner, offset=offset, limit=LIST_PAGE, total=page.total)
    await edit_quietly(pressed(update), list_text(page.items, offset, page.total), keyboard)
    return ""


async def forget_all_command(update: Update, context: BotContext) -> None:
    """/forget_all — ask for confirmation with a button."""
    services = context.services
    user_id = await services.permit(update, write=True)
    if user_id is None:
        return
    page = await services.engine.reads.page(user_id=user_id, limit=1)
    if page.total == 0:
        await reply(update, "You have no memories to forget.")
        return
    nonce = secrets.token_hex(4)
    await services.conversations.set(user_id, Awaiting.FORGET_ALL_CONFIRMATION, {"nonce": nonce})
    await reply(
        update,
        f"This forgets all <b>{page.total}</b> of your memories, for good. Are you sure?",
        confirm_keyboard(user_id, nonce),
    )


async def forget_all_answered(update: Update, context: BotContext, callback: Callback) -> str:
    """Yes / Cancel under the /forget_all question (only the latest question counts)."""
    services = context.services
    owner = callback.owner
    confirmed = await services.conversations.take_confirmation(
        owner, Awaiting.FORGET_ALL_CONFIRMATION, callback.arg
    )
    if confirmed is None:
        return EXPIRED
    query = pressed(update)
    if callback.button == Button.CANCEL_FORGET_ALL:
        await query.edit_message_text("Cancelled: nothing was forgotten.")
        return "Cancelled"
    count = await services.engine.writes.forget_all(user_id=owner)
    await query.edit_message_text(f"🗑 Forgot all {count} memories.")
    return "Done"
