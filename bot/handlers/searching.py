"""Finding: /recall, /list and /forget_all, and the buttons on their replies."""

from __future__ import annotations

import contextlib
import secrets

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.handlers.broadcast import ADMIN_ACTIONS, admin_button
from bot.handlers.common import command_payload, reply
from bot.keyboards import (
    Callback,
    confirm_keyboard,
    list_keyboard,
    parse_callback,
    recall_keyboard,
)
from bot.replies import esc, list_text, recall_text
from bot.services import Context, services
from engine.errors import InvalidInput

PAGE = 5
LIST_PAGE = 10
MAX_RESULTS = 50
AWAITING_RECALL = "awaiting_recall"
CONFIRM_FORGET_ALL = "confirm_forget_all"
EXPIRED = "This button has expired."


async def render_recall(
    context: Context, user_id: int, query: str, start: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    hits = await services(context).engine.memories.recall(
        user_id=user_id, query=query, k=min(start + PAGE + 1, MAX_RESULTS)
    )
    shown = hits[start : start + PAGE]
    keyboard = recall_keyboard(
        user_id,
        [hit.memory.short_id for hit in shown],
        start=start,
        more=len(hits) > start + PAGE,
    )
    return recall_text(query, shown, start), keyboard


async def run_recall(update: Update, context: Context, query: str) -> None:
    """Answer `query` with numbered results, delete buttons and a More button."""
    found = services(context)
    user_id = await found.permit(update, write=False)
    if user_id is None:
        return
    try:
        text, keyboard = await render_recall(context, user_id, query, 0)
    except InvalidInput as error:
        await reply(update, f"⚠️ {esc(str(error))}")
        return
    sent = await reply(update, text, keyboard)
    if sent is not None:
        await found.recalls.remember(user_id, sent.message_id, query)


async def recall_command(update: Update, context: Context) -> None:
    """/recall question (alias /search) — or alone, then the question."""
    message = update.effective_message
    assert message is not None
    query = command_payload(message)
    if query:
        await run_recall(update, context, query)
        return
    found = services(context)
    await found.conversations.set(await found.ensure_user(update), AWAITING_RECALL)
    await reply(update, "What are you looking for? Send it as your next message.")


async def list_command(update: Update, context: Context) -> None:
    """/list — a page of memories, newest first."""
    found = services(context)
    user_id = await found.permit(update, write=False)
    if user_id is None:
        return
    page = await found.engine.memories.list(user_id=user_id, limit=LIST_PAGE)
    keyboard = list_keyboard(user_id, offset=0, limit=LIST_PAGE, total=page.total)
    await reply(update, list_text(page.items, 0, page.total), keyboard)


async def forget_all_command(update: Update, context: Context) -> None:
    """/forget_all — ask for confirmation with a button."""
    found = services(context)
    user_id = await found.permit(update, write=True)
    if user_id is None:
        return
    page = await found.engine.memories.list(user_id=user_id, limit=1)
    if page.total == 0:
        await reply(update, "You have no memories to forget.")
        return
    nonce = secrets.token_hex(4)
    await found.conversations.set(user_id, CONFIRM_FORGET_ALL, {"nonce": nonce})
    await reply(
        update,
        f"This forgets all <b>{page.total}</b> of your memories, for good. Are you sure?",
        confirm_keyboard(user_id, nonce),
    )


async def answer_quietly(query: CallbackQuery, note: str) -> None:
    """Answer a button press; one answered too late (bot was down) is not an error."""
    with contextlib.suppress(BadRequest):
        await query.answer(note)


async def edit_quietly(
    query: CallbackQuery, html: str, keyboard: InlineKeyboardMarkup | None
) -> None:
    """Edit the pressed message; a double tap ("message is not modified") is not an error."""
    try:
        await query.edit_message_text(html, parse_mode=ParseMode.HTML, reply_markup=keyboard)
    except BadRequest as error:
        if "not modified" not in str(error).lower():
            raise


async def button_pressed(update: Update, context: Context) -> None:
    """Every inline button: validated, owner-checked, then dispatched."""
    query = update.callback_query
    assert query is not None
    callback = parse_callback(query.data)
    message = query.message
    if callback is None or callback.owner != query.from_user.id or message is None:
        await answer_quietly(query, EXPIRED)
        return
    await services(context).ensure_user(update)
    if callback.action in ADMIN_ACTIONS:
        await admin_button(update, context, callback)
        return
    try:
        note = await _dispatch(context, callback, message.message_id, update)
    except InvalidInput:
        note = EXPIRED
    await answer_quietly(query, note)


async def _dispatch(context: Context, callback: Callback, message_id: int, update: Update) -> str:
    found = services(context)
    memories = found.engine.memories
    query = update.callback_query
    assert query is not None
    owner = callback.owner
    if callback.action in ("u", "d"):
        if await found.permit(update, write=True) is None:
            return "Not allowed"
        memory = await memories.resolve(user_id=owner, ref=callback.arg)
        await memories.forget(user_id=owner, memory_id=memory.id)
        if callback.action == "u":
            await query.edit_message_text(
                f"↩️ Undone: <code>{memory.short_id}</code> forgotten.", parse_mode=ParseMode.HTML
            )
        return f"🗑 Forgot {memory.short_id}"
    if callback.action == "rp":
        text = await found.recalls.query_for(owner, message_id)
        if text is None:
            return EXPIRED
        body, keyboard = await render_recall(context, owner, text, int(callback.arg))
        await edit_quietly(query, body, keyboard)
        return ""
    if callback.action == "lp":
        offset = int(callback.arg)
        page = await memories.list(user_id=owner, offset=offset, limit=LIST_PAGE)
        keyboard = list_keyboard(owner, offset=offset, limit=LIST_PAGE, total=page.total)
        await edit_quietly(query, list_text(page.items, offset, page.total), keyboard)
        return ""
    pending = await found.conversations.get(owner)
    if pending is None or pending.state != CONFIRM_FORGET_ALL:
        return EXPIRED
    if pending.payload.get("nonce") != callback.arg:
        return EXPIRED
    await found.conversations.clear(owner)
    if callback.action == "fx":
        await query.edit_message_text("Cancelled: nothing was forgotten.")
        return "Cancelled"
    count = await memories.forget_all(user_id=owner)
    await query.edit_message_text(f"🗑 Forgot all {count} memories.")
    return "Done"
