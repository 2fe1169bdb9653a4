"""Where a conversation continues: pending states and pressed buttons, mapped in one place.

A command that needs more (`/save` alone, `/forget_all`, a broadcast preview) stores an
`Awaiting` state; the user's next message or button press comes through here and is handed to
the handler that finishes the job. Handler modules never import each other for this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update

from bot.context import BotContext
from bot.conversations import Awaiting
from bot.handlers.broadcast import broadcast_answered, show_preview
from bot.handlers.changing import forget_pressed
from bot.handlers.common import EXPIRED, answer_quietly, command_payload, message_text, reply
from bot.handlers.saving import pending_ttl, save_command, save_text
from bot.handlers.searching import forget_all_answered, list_page, recall_more, run_recall
from bot.keyboards import Button, Callback, parse_callback
from engine.errors import InvalidInput

Continuation = Callable[[Update, BotContext, str, dict[str, Any]], Awaitable[None]]
ButtonAction = Callable[[Update, BotContext, Callback], Awaitable[str]]


async def _save_pending(
    update: Update, context: BotContext, text: str, payload: dict[str, Any]
) -> None:
    """`Awaiting.SAVE_TEXT`: save this message, with the TTL /save was given."""
    await save_text(update, context, text, pending_ttl(payload))


async def _recall_pending(
    update: Update, context: BotContext, text: str, payload: dict[str, Any]
) -> None:
    """`Awaiting.RECALL_QUERY`: this message is the question."""
    await run_recall(update, context, text)


async def _preview_pending(
    update: Update, context: BotContext, text: str, payload: dict[str, Any]
) -> None:
    """`Awaiting.BROADCAST_TEXT`: preview this message as the broadcast."""
    await show_preview(update, context, text)


# The states a text message completes. The confirmation states are answered by buttons
# (see BUTTONS): a message sent meanwhile leaves them pending and is saved as usual.
CONTINUATIONS: dict[Awaiting, Continuation] = {
    Awaiting.SAVE_TEXT: _save_pending,
    Awaiting.RECALL_QUERY: _recall_pending,
    Awaiting.BROADCAST_TEXT: _preview_pending,
}
# Buttons answered with a note (a memory that is gone meanwhile makes the button expired).
BUTTONS: dict[Button, ButtonAction] = {
    Button.UNDO_SAVE: forget_pressed,
    Button.FORGET: forget_pressed,
    Button.RECALL_MORE: recall_more,
    Button.LIST_PAGE: list_page,
    Button.CONFIRM_FORGET_ALL: forget_all_answered,  # answers Awaiting.FORGET_ALL_CONFIRMATION
    Button.CANCEL_FORGET_ALL: forget_all_answered,
}
# Admin buttons answer for themselves (refusals are audited); they answer
# Awaiting.BROADCAST_CONFIRMATION.
ADMIN_BUTTONS = frozenset({Button.SEND_BROADCAST, Button.CANCEL_BROADCAST})


async def plain_message(update: Update, context: BotContext) -> None:
    """Text or caption: completes a pending /save, /recall or /broadcast, else saves (private)."""
    message = update.effective_message
    assert message is not None
    services = context.services
    user_id = await services.ensure_user(update)
    text = message_text(message)
    if message.caption and text.startswith("/"):
        await caption_command(update, context, text)
        return
    pending = await services.conversations.get(user_id)
    continuation = CONTINUATIONS.get(pending.state) if pending is not None else None
    if pending is not None and continuation is not None:
        await services.conversations.clear(user_id)
        await continuation(update, context, text, pending.payload)
        return
    if message.chat.type != "private":
        return
    await save_text(update, context, text, None)


async def caption_command(update: Update, context: BotContext, caption: str) -> None:
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


async def button_pressed(update: Update, context: BotContext) -> None:
    """Every inline button: validated, owner-checked, then handed to its action."""
    query = update.callback_query
    assert query is not None
    callback = parse_callback(query.data)
    if callback is None or callback.owner != query.from_user.id or query.message is None:
        await answer_quietly(query, EXPIRED)
        return
    await context.services.ensure_user(update)
    if callback.button in ADMIN_BUTTONS:
        await broadcast_answered(update, context, callback)
        return
    try:
        note = await BUTTONS[callback.button](update, context, callback)
    except InvalidInput:
        note = EXPIRED
    await answer_quietly(query, note)
