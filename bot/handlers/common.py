"""Helpers every handler uses: command text, HTML replies (in the right forum topic), reply
prompts in groups, quiet button answers."""

from __future__ import annotations

import contextlib
from typing import Any

from telegram import (
    CallbackQuery,
    ForceReply,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.actors import actor_of, thread_of
from bot.context import BotContext
from bot.conversations import Awaiting
from bot.keyboards import ROW_ID_MAX  # reminders' and broadcasts' ids: PostgreSQL integers
from bot.replies import esc, split_message

EXPIRED = "This button has expired."
NOT_YOURS = "Not yours."
NOT_AUTHOR = "Only the author or a group admin can change this memory."
PRIVATE_ONLY = "Please use this in a private chat with me."


def message_text(message: Message) -> str:
    """The message's text, or its caption for photos and documents."""
    return message.text or message.caption or ""


def command_payload(message: Message) -> str:
    """What follows the leading /command (newlines kept)."""
    text = message_text(message)
    entities = message.entities or message.caption_entities or ()
    for entity in entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return text[entity.length :].strip()
    first, _, rest = text.partition(" ")
    return rest.strip() if first.startswith("/") else text.strip()


async def reply(
    update: Update, html: str, keyboard: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Send `html` to the update's chat (and forum topic) in parts below 4,096 characters;
    the keyboard goes on the last part."""
    chat = update.effective_chat
    if chat is None:
        return None
    parts = split_message(html)
    sent: Message | None = None
    for index, part in enumerate(parts):
        sent = await chat.send_message(
            part,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard if index == len(parts) - 1 else None,
            disable_web_page_preview=True,
            message_thread_id=thread_of(update),
        )
    return sent


async def ask_for_reply(update: Update, html: str, placeholder: str) -> Message:
    """In a group: ask the sender to answer by replying (ForceReply, only for them)."""
    message = update.effective_message
    assert message is not None
    return await message.chat.send_message(
        html,
        parse_mode=ParseMode.HTML,
        reply_markup=ForceReply(selective=True, input_field_placeholder=placeholder),
        reply_parameters=ReplyParameters(message_id=message.message_id),
        message_thread_id=thread_of(update),
    )


async def ask(
    update: Update,
    context: BotContext,
    state: Awaiting,
    payload: dict[str, Any],
    *,
    private: str,
    group: str,
    placeholder: str,
) -> None:
    """Wait for the sender's next message in this chat: in private any message answers;
    in a group only a reply to the prompt (its id is kept as `prompt_id`)."""
    actor = actor_of(update)
    conversations = context.services.conversations
    if actor.private:
        await conversations.set(actor.space_id, actor.id, state, payload)
        await reply(update, private)
        return
    prompt = await ask_for_reply(update, group, placeholder)
    payload = {**payload, "prompt_id": prompt.message_id}
    await conversations.set(actor.space_id, actor.id, state, payload)


def admin_only_here(command: str) -> str:
    """The refusal of an administrators-only command to a member of a group."""
    return f"Only a group admin can use /{command} in this group."


async def warn(update: Update, error: Exception) -> None:
    """Tell the user why their request was refused."""
    await reply(update, f"⚠️ {esc(str(error))}")


def pressed(update: Update) -> CallbackQuery:
    """The button press this update carries (button handlers only get such updates)."""
    query = update.callback_query
    assert query is not None
    return query


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


def number_in(text: str, *, high: int = ROW_ID_MAX) -> int | None:
    """`text` as a whole number from 0 to `high`, or None: ASCII digits only ("²" and "٣"
    are digits to str.isdigit, but no id), nothing PostgreSQL's integer columns overflow on."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):
        return None
    value = int(text)
    return value if value <= high else None
