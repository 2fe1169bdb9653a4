"""The data model: sent-message and upload records, and builders of Telegram JSON objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botapi_emulator.formatting import command_entities


@dataclass
class SentMessage:
    """A message the bot sent, in its current state (after edits)."""

    chat_id: int
    message_id: int
    text: str | None
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    document: bytes | None = None
    file_name: str | None = None
    caption: str | None = None
    edits: int = 0
    date: int = 0
    plain: str | None = None  # visible text (or caption) after entity parsing
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_to: int | None = None
    deleted: bool = False
    file_id: str | None = None
    edit_date: int | None = None
    thread_id: int | None = None  # message_thread_id: a forum topic or a supergroup reply thread

    @property
    def force_reply(self) -> bool:
        """Whether it was sent with a ForceReply reply_markup."""
        return bool(self.reply_markup and self.reply_markup.get("force_reply"))


@dataclass
class Upload:
    """A file part of a multipart request."""

    file_name: str
    data: bytes
    mime_type: str


def user_dict(user_id: int, first_name: str, username: str | None) -> dict[str, Any]:
    """The User object of a (non-bot) user."""
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        user["username"] = username
    user["language_code"] = "en"
    return user


# The fake senders Telegram puts in `from` of messages sent on behalf of a chat.
GROUP_ANONYMOUS_BOT: dict[str, Any] = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
CHANNEL_BOT: dict[str, Any] = {
    "id": 136817688,
    "is_bot": True,
    "first_name": "Channel",
    "username": "Channel_Bot",
}


def private_chat_dict(user_id: int, first_name: str, username: str | None) -> dict[str, Any]:
    """The Chat object of a user's private chat with the bot."""
    chat: dict[str, Any] = {"id": user_id, "type": "private", "first_name": first_name}
    return chat | ({"username": username} if username else {})


def private_chat(chat_id: int) -> dict[str, Any]:
    """The Chat object of a chat never seen: a private chat."""
    return {"id": chat_id, "type": "private", "first_name": "Test"}


def caption_dict(caption: str | None) -> dict[str, Any]:
    """The caption fields of a media message (with a bot_command entity if it starts with one)."""
    if caption is None:
        return {}
    found = command_entities(caption)
    return {"caption": caption, **({"caption_entities": found} if found else {})}


def file_ref(number: int, upload: Upload) -> tuple[str, dict[str, Any]]:
    """The file_id of the `number`th stored file and its file_id/file_unique_id/file_size."""
    file_id = f"FILE{number:06d}{upload.file_name.encode().hex()[:12]}"
    ref = {"file_id": file_id, "file_unique_id": f"U{number:06d}", "file_size": len(upload.data)}
    return file_id, ref


def bot_message_dict(
    sent: SentMessage,
    *,
    sender: dict[str, Any],
    chat: dict[str, Any],
    upload: Upload | None,
    reply_to_message: dict[str, Any] | None,
    is_topic_message: bool = False,
) -> dict[str, Any]:
    """The Message object Telegram returns for a bot message (`upload`: its document's file)."""
    msg: dict[str, Any] = {
        "message_id": sent.message_id,
        "from": sender,
        "chat": chat,
        "date": sent.date,
    }
    if sent.thread_id is not None:
        msg["message_thread_id"] = sent.thread_id
    key = "text" if sent.document is None else "caption"
    if upload is not None and sent.file_id is not None:
        msg["document"] = {
            "file_id": sent.file_id,
            "file_unique_id": f"U{sent.file_id[4:10]}",
            "file_name": upload.file_name,
            "mime_type": upload.mime_type,
            "file_size": len(upload.data),
        }
    if sent.plain is not None:
        msg[key] = sent.plain
    if sent.entities:
        msg["entities" if key == "text" else "caption_entities"] = sent.entities
    if sent.reply_markup and "inline_keyboard" in sent.reply_markup:
        msg["reply_markup"] = sent.reply_markup  # Telegram echoes inline keyboards only
    if sent.edit_date is not None:
        msg["edit_date"] = sent.edit_date
    if reply_to_message is not None:
        msg["reply_to_message"] = reply_to_message
    if is_topic_message:
        msg["is_topic_message"] = True
    return msg
