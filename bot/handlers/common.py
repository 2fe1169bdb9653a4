"""Helpers every handler uses: the text after a command, and HTML replies split to size."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.constants import ParseMode

from bot.replies import split_message


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
