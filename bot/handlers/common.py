"""Helpers every handler uses: command text, HTML replies split to size, quiet button answers."""

from __future__ import annotations

import contextlib

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.replies import esc, split_message

EXPIRED = "This button has expired."


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
    """Send `html` to the update's chat in parts below 4,096 characters; keyboard on the last."""
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
        )
    return sent


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
