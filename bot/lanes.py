"""Reading a raw update's chat: the lane whose order it keeps."""

from __future__ import annotations

from typing import Any


def chat_in(raw: dict[str, Any]) -> int | None:
    """The chat id of a raw update, if it has one where messages keep it (best effort)."""
    for value in raw.values():
        if not isinstance(value, dict):
            continue
        message = value.get("message")
        chat = (message if isinstance(message, dict) else value).get("chat")
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
    return None


def lane_of(raw: dict[str, Any]) -> int:
    """The chat whose order this update keeps; chatless updates (inline queries) use their
    sender, and 0 when there is none."""
    chat = chat_in(raw)
    if chat is not None:
        return chat
    for value in raw.values():
        sender = value.get("from") if isinstance(value, dict) else None
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return int(sender["id"])
    return 0
