"""Where a conversation continues: pending states and pressed buttons, mapped in one place.

A command that needs more (`/save` alone, `/forget_all`, a broadcast preview) stores an
`Awaiting` state; the user's next message or button press comes through here and is handed to
the handler that finishes the job. Handler modules never import each other for this.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Message, Update

from bot.actors import Actor, actor_of
from bot.context import BotContext
from bot.conversations import Awaiting, Conversation
from bot.handlers.basics import not_text
from bot.handlers.broadcast import broadcast_answered, show_preview
from bot.handlers.changing import forget_pressed
from bot.handlers.common import (
    EXPIRED,
    NOT_YOURS,
    answer_quietly,
    command_payload,
    message_text,
    reply,
)
from bot.handlers.importing import import_command, import_file, import_pending
from bot.handlers.listing import list_page
from bot.handlers.reminding import cancel_pressed, reminder_pressed
from bot.handlers.saved import keep_both_pressed, replace_pressed
from bot.handlers.saving import pending_ttl, save_command, save_text
from bot.handlers.searching import forget_all_answered, recall_more, run_recall
from bot.keyboards import Button, Callback, parse_callback
from bot.logsafe import describe_error
from engine.errors import InvalidInput

log = logging.getLogger("memorybot.bot")
Continuation = Callable[[Update, BotContext, str, dict[str, Any]], Awaitable[None]]
ButtonAction = Callable[[Update, BotContext, Callback], Awaitable[str]]


async def _save_pending(
    update: Update, context: BotContext, text: str, payload: dict[str, Any]
) -> None:
    """`Awaiting.SAVE_TEXT`: save this message, with the TTL /save was given; the prompt is
    cleared in the save's own unit of work (a retry after a failure still finds it)."""
    actor = actor_of(update)
    clearing = context.services.conversations.clearing(actor.space_id, actor.id)
    await save_text(update, context, text, pending_ttl(payload), also=clearing)


async def _recall_pending(
    update: Update, context: BotContext, text: str, payload: dict[str, Any]
) -> None:
    """`Awaiting.RECALL_QUERY`: this message is the question. The prompt is cleared after the
    answer (a recall writes nothing to clear it with): a recall that fails is retried as the
    answer to the prompt, never saved as a note; a clearing that fails is logged, not retried
    (the answer is out), and the prompt times out."""
    await run_recall(update, context, text)
    actor = actor_of(update)
    try:
        await context.services.conversations.clear(actor.space_id, actor.id)
    except Exception as error:
        log.warning("recall prompt not cleared: %s", describe_error(error))


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
    Awaiting.IMPORT_FILE: import_pending,
}
# States whose continuation clears them itself (in its unit of work, or after the answer).
CLEARED_BY_THE_ACTION = frozenset({Awaiting.SAVE_TEXT, Awaiting.RECALL_QUERY})
# Buttons answered with a note (a memory that is gone meanwhile makes the button expired).
BUTTONS: dict[Button, ButtonAction] = {
    Button.UNDO_SAVE: forget_pressed,
    Button.FORGET: forget_pressed,
    Button.RECALL_MORE: recall_more,
    Button.LIST_PAGE: list_page,
    Button.CONFIRM_FORGET_ALL: forget_all_answered,  # answers Awaiting.FORGET_ALL_CONFIRMATION
    Button.CANCEL_FORGET_ALL: forget_all_answered,
    Button.REMINDER_DONE: reminder_pressed,
    Button.SNOOZE_HOUR: reminder_pressed,
    Button.SNOOZE_TOMORROW: reminder_pressed,
    Button.CANCEL_REMINDER: cancel_pressed,
    Button.KEEP_BOTH: keep_both_pressed,  # under a near-duplicate notice
    Button.REPLACE_OLD: replace_pressed,
}
# Admin buttons answer for themselves (refusals are audited); they answer
# Awaiting.BROADCAST_CONFIRMATION.
ADMIN_BUTTONS = frozenset({Button.SEND_BROADCAST, Button.CANCEL_BROADCAST})


async def plain_message(update: Update, context: BotContext) -> None:
    """Text or caption: completes a pending /save, /recall or /broadcast, else saves (private).

    In a group only a reply to the bot's own prompt counts (privacy mode): other chatter is
    never saved or answered, and never completes a prompt.
    """
    message = update.effective_message
    assert message is not None
    text = message_text(message)
    if message.caption and text.startswith("/"):
        if addressed_to_me(text, context.bot.username):
            await caption_command(update, context, text)
        return
    actor = actor_of(update)
    prompt = message.reply_to_message
    if actor.in_group and (prompt is None or not sent_by(prompt, context.bot.id)):
        return
    services = context.services
    pending = await services.conversations.get(actor.space_id, actor.id)
    continuation = CONTINUATIONS.get(pending.state) if pending is not None else None
    if pending is not None and continuation is not None and answers(actor, prompt, pending):
        if pending.state not in CLEARED_BY_THE_ACTION:
            await services.conversations.clear(actor.space_id, actor.id)
        await continuation(update, context, text, pending.payload)
        return
    if actor.private:
        await save_text(update, context, text, None)


def sent_by(message: Message, user_id: int) -> bool:
    """True if `user_id` sent `message`."""
    return message.from_user is not None and message.from_user.id == user_id


def answers(actor: Actor, reply_to: Message | None, pending: Conversation) -> bool:
    """In private any message answers; in a group only a reply to that very prompt."""
    if actor.private:
        return True
    prompt_id = pending.payload.get("prompt_id")
    return reply_to is not None and prompt_id in (None, reply_to.message_id)


def addressed_to_me(text: str, username: str) -> bool:
    """A leading /command without @bot, or with this bot's @username."""
    head = text.split(maxsplit=1)[0] if text.strip() else ""
    _, at, name = head.partition("@")
    return not at or name.lower() == username.lower()


async def caption_command(update: Update, context: BotContext, caption: str) -> None:
    """A photo or file captioned with /save or /recall works like the command."""
    name = caption[1:].split(maxsplit=1)[0].split("@")[0].lower() if len(caption) > 1 else ""
    if name == "save":
        await save_command(update, context)
    elif name == "import":
        await import_command(update, context)
    elif name in ("recall", "search"):
        message = update.effective_message
        assert message is not None
        await run_recall(update, context, command_payload(message))
    elif actor_of(update).private:
        await reply(update, "In a caption I understand /save, /recall and /import; see /help.")


async def file_message(update: Update, context: BotContext) -> None:
    """A file without a caption: completes a pending /import; else (private) `not_text`."""
    message = update.effective_message
    assert message is not None
    actor = actor_of(update)
    prompt = message.reply_to_message
    if actor.in_group and (prompt is None or not sent_by(prompt, context.bot.id)):
        return
    conversations = context.services.conversations
    pending = await conversations.get(actor.space_id, actor.id)
    if (
        pending is not None
        and pending.state == Awaiting.IMPORT_FILE
        and answers(actor, prompt, pending)
    ):
        await conversations.clear(actor.space_id, actor.id)
        await import_file(update, context)
    elif actor.private:
        await not_text(update, context)


async def button_pressed(update: Update, context: BotContext) -> None:
    """Every inline button: validated, bound to its owner and chat, then handed to its action.

    The owner (a user, or a group for an anonymous administrator's buttons) is in the data;
    anyone else pressing gets "Not yours." (an anonymous administrator's button may be pressed
    by any administrator of that group). The action acts on the pressed message's chat.
    """
    query = update.callback_query
    assert query is not None
    callback = parse_callback(query.data)
    if callback is None or query.message is None or update.effective_chat is None:
        await answer_quietly(query, EXPIRED)
        return
    if not await may_press(context, callback, actor_of(update)):
        await answer_quietly(query, NOT_YOURS)
        return
    if callback.button in ADMIN_BUTTONS:
        await broadcast_answered(update, context, callback)
        return
    try:
        note = await BUTTONS[callback.button](update, context, callback)
    except InvalidInput:
        note = EXPIRED
    await answer_quietly(query, note)


async def may_press(context: BotContext, callback: Callback, presser: Actor) -> bool:
    """The owner, or for a group's own button (an anonymous administrator's) its admins."""
    if callback.owner == presser.id:
        return True
    return (
        callback.owner == presser.space_id
        and presser.in_group
        and (await context.services.administers(context.bot, presser))
    )
