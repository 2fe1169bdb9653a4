"""Inline keyboards and their callback data: short, validated, tied to the user who owns them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

CALLBACK = re.compile(r"(u|d|rp|lp|fa|fx|bs|bx):(\d{1,20}):([0-9a-f]{0,32})")
ARGUMENT = {  # what each action's argument must look like
    "u": re.compile(r"[0-9a-f]{4,32}"),
    "d": re.compile(r"[0-9a-f]{4,32}"),
    "rp": re.compile(r"\d{1,4}"),
    "lp": re.compile(r"\d{1,6}"),
    "fa": re.compile(r"[0-9a-f]{8}"),
    "fx": re.compile(r"[0-9a-f]{8}"),
    "bs": re.compile(r"[0-9a-f]{8}"),
    "bx": re.compile(r"[0-9a-f]{8}"),
}


@dataclass(frozen=True)
class Callback:
    """A parsed button press: `action:owner:arg` (e.g. `d:42:3f2a9c1b`)."""

    action: str
    owner: int
    arg: str

    def encode(self) -> str:
        return f"{self.action}:{self.owner}:{self.arg}"


def parse_callback(data: str | None) -> Callback | None:
    """The callback, or None when the data is malformed (forged or from an old version)."""
    match = CALLBACK.fullmatch(data or "")
    if match is None or not ARGUMENT[match.group(1)].fullmatch(match.group(3)):
        return None
    return Callback(match.group(1), int(match.group(2)), match.group(3))


def button(text: str, action: str, owner: int, arg: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=Callback(action, owner, arg).encode())


def undo_keyboard(owner: int, short_id: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[button("↩️ Undo", "u", owner, short_id)]])


def recall_keyboard(
    owner: int, short_ids: list[str], *, start: int, more: bool
) -> InlineKeyboardMarkup | None:
    rows = (
        [[button(f"🗑 {start + i + 1}", "d", owner, s) for i, s in enumerate(short_ids)]]
        if short_ids
        else []
    )
    if more:
        rows.append([button("More ▶", "rp", owner, str(start + len(short_ids)))])
    return InlineKeyboardMarkup(rows) if rows else None


def list_keyboard(
    owner: int, *, offset: int, limit: int, total: int
) -> InlineKeyboardMarkup | None:
    row = []
    if offset > 0:
        row.append(button("◀ Newer", "lp", owner, str(max(0, offset - limit))))
    if offset + limit < total:
        row.append(button("Older ▶", "lp", owner, str(offset + limit)))
    return InlineKeyboardMarkup([row]) if row else None


def confirm_keyboard(owner: int, nonce: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                button("🗑 Yes, forget everything", "fa", owner, nonce),
                button("Cancel", "fx", owner, nonce),
            ]
        ]
    )


def broadcast_keyboard(owner: int, nonce: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[button("📣 Send", "bs", owner, nonce), button("Cancel", "bx", owner, nonce)]]
    )
