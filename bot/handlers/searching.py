"""Finding: /recall and /forget_all, and the buttons on their replies.

Everything acts on the space of the chat the command was sent (or the button pressed) in.
"""

from __future__ import annotations

import secrets

from telegram import InlineKeyboardMarkup, Update

from bot.actors import actor_of
from bot.context import BotContext
from bot.conversations import Awaiting, purging_chat_traces
from bot.filtering import (
    Asked,
    asked,
    filtered_list_text,
    recall_hits_text,
)
from bot.handlers.common import (
    EXPIRED,
    admin_only_here,
    ask,
    command_payload,
    edit_quietly,
    pressed,
    reply,
    warn,
)
from bot.handlers.guards import group_admin_or_refuse
from bot.keyboards import (
    Button,
    Callback,
    confirm_keyboard,
    recall_keyboard,
)
from bot.replies import recall_text
from engine.errors import InvalidInput

PAGE = 5
MAX_RESULTS = 50
RECALL_PROMPT = "What are you looking for? Reply to this message with your question."


async def render_recall(
    context: BotContext, space_id: int, owner: int, question: Asked, start: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of results for `question` in one space from `start`, with `owner`'s buttons.

    A question that is only a filter (`#trip`, `last week`) lists what the filter keeps.
    """
    reads = context.services.engine.reads
    parsed = question.parsed()
    if not parsed.text:
        page = await reads.page(space_id=space_id, offset=start, limit=PAGE, wanted=parsed.wanted)
        ids = [memory.short_id for memory in page.items]
        keyboard = recall_keyboard(owner, ids, start=start, more=page.has_more)
        return filtered_list_text(parsed, page.items, start, page.total, "recall"), keyboard
    hits = await reads.recall(
        space_id=space_id,
        query=parsed.text,
        k=min(start + PAGE + 1, MAX_RESULTS),
        wanted=parsed.wanted,
    )
    shown = hits[start : start + PAGE]
    keyboard = recall_keyboard(
        owner,
        [hit.memory.short_id for hit in shown],
        start=start,
        more=len(hits) > start + PAGE,
    )
    if parsed.wanted.empty:
        return recall_text(parsed.text, shown, start), keyboard
    return recall_hits_text(parsed, shown, start), keyboard


async def run_recall(update: Update, context: BotContext, question: str) -> None:
    """Answer `question` with numbered results, delete buttons and a More button."""
    services = context.services
    actor = await services.permit(update, write=False)
    if actor is None:
        return
    try:
        query = await asked(services.engine.users, actor.id, question, anonymous=actor.anonymous)
        text, keyboard = await render_recall(context, actor.space_id, actor.id, query, 0)
    except InvalidInput as error:
        await warn(update, error)
        return
    sent = await reply(update, text, keyboard)
    if sent is None:
        return
    # Written behind (bot.memos): the answer costs no write transaction.
    services.recalls.remember(actor.space_id, actor.id, sent.message_id, query.encode())


async def recall_command(update: Update, context: BotContext) -> None:
    """/recall question (alias /search) — or alone, then the question."""
    message = update.effective_message
    assert message is not None
    question = command_payload(message)
    if question:
        await run_recall(update, context, question)
        return
    await ask(
        update,
        context,
        Awaiting.RECALL_QUERY,
        {},
        private="What are you looking for? Send it as your next message.",
        group=RECALL_PROMPT,
        placeholder="What are you looking for?",
    )


async def recall_more(update: Update, context: BotContext, callback: Callback) -> str:
    """More ▶ under a recall: the next page of the same question, in the same message."""
    query = pressed(update)
    assert query.message is not None
    space, owner = query.message.chat.id, callback.owner
    memo = await context.services.recalls.query_for(space, owner, query.message.message_id)
    if memo is None:
        return EXPIRED
    question = Asked.decode(memo)
    body, keyboard = await render_recall(context, space, owner, question, int(callback.arg))
    await edit_quietly(query, body, keyboard)
    return ""


async def forget_all_command(update: Update, context: BotContext) -> None:
    """/forget_all — ask for confirmation with a button (in a group: administrators only)."""
    if not await group_admin_or_refuse(update, context, "forget_all"):
        return
    services = context.services
    actor = await services.permit(update, write=True)
    if actor is None:
        return
    page = await services.engine.reads.page(space_id=actor.space_id, limit=1)
    if page.total == 0:
        empty = "This group has no memories to forget." if actor.in_group else None
        await reply(update, empty or "You have no memories to forget.")
        return
    nonce = secrets.token_hex(4)
    await services.conversations.set(
        actor.space_id, actor.id, Awaiting.FORGET_ALL_CONFIRMATION, {"nonce": nonce}
    )
    whose = "memories of this group" if actor.in_group else "of your memories"
    await reply(
        update,
        f"This forgets all <b>{page.total}</b> {whose}, for good. Are you sure?",
        confirm_keyboard(actor.id, nonce),
    )


async def forget_all_answered(update: Update, context: BotContext, callback: Callback) -> str:
    """Yes / Cancel under the /forget_all question (only the latest question counts).

    Yes forgets every memory of the chat's space, then what may still hold its texts: its
    dead letters, recall memos and pending conversations.
    """
    services = context.services
    actor = actor_of(update)
    if actor.in_group and not await services.administers(context.bot, actor):
        return admin_only_here("forget_all")
    conversations = services.conversations
    confirmed = await conversations.confirmation(
        actor.space_id, callback.owner, Awaiting.FORGET_ALL_CONFIRMATION, callback.arg
    )
    if confirmed is None:
        return EXPIRED
    query = pressed(update)
    if callback.button == Button.CANCEL_FORGET_ALL:
        await conversations.clear(actor.space_id, callback.owner)
        await query.edit_message_text("Cancelled: nothing was forgotten.")
        return "Cancelled"
    # the chat's traces go, its conversations (this confirmation too) with them, in the same
    # unit of work: a retry after a failure finds the confirmation and forgets all then
    conversations.let_go(actor.space_id)  # its cached states are about to be deleted
    count = await services.engine.writes.forget_all(
        space_id=actor.space_id, also=purging_chat_traces(actor.space_id, services.recalls)
    )
    await query.edit_message_text(f"🗑 Forgot all {count} memories.")
    return "Done"
