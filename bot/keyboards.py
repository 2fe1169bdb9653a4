"""Inline keyboards and their callback data: short, validated, tied to who they were made for.

Callback data is `code:owner:arg` (e.g. `d:42:3f2a9c1b`), at most 64 bytes. The owner is the
user the button was made for, or the group's own (negative) id for an anonymous
administrator's buttons (any administrator of that group may press those). The space a button
acts on is never in the data: it is the chat of the message the button sits under. The codes
and this layout are the wire format of buttons already sitting in users' chats, so they never
change; `Button` names them for what they do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from telegram import InlineKeyboardButton, InlineKeyboardMarkup


class Button(StrEnum):
    """What an inline button does; the value is its code on the wire."""

    UNDO_SAVE = "u"  # under "✅ Saved": forget that memory again
    FORGET = "d"  # 🗑 under a recall result: forget that memory
    RECALL_MORE = "rp"  # "More ▶" under a recall: the next page of results
    LIST_PAGE = "lp"  # "◀ Newer" / "Older ▶" under /list: another page
    CONFIRM_FORGET_ALL = "fa"  # /forget_all: yes, forget everything
    CANCEL_FORGET_ALL = "fx"  # /forget_all: no
    SEND_BROADCAST = "bs"  # a broadcast preview: send it
    CANCEL_BROADCAST = "bx"  # a broadcast preview: drop it
    REMINDER_DONE = "rd"  # ✅ Done under a delivered reminder
    SNOOZE_HOUR = "rh"  # 💤 1 h under a delivered reminder
    SNOOZE_TOMORROW = "rt"  # 💤 tomorrow under a delivered reminder
    CANCEL_REMINDER = "rc"  # ✖ under /reminders: cancel that reminder
    KEEP_BOTH = "kb"  # a near-duplicate save: keep both (the default)
    REPLACE_OLD = "kr"  # a near-duplicate save: forget the older one


MEMORY_REF = re.compile(r"[0-9a-f]{4,32}")
NONCE = re.compile(r"[0-9a-f]{8}")
MEMORY_PAIR = re.compile(r"[0-9a-f]{32}")  # two 16-hex-digit memory refs: the older, the new
ROW_ID = re.compile(r"[0-9]{1,10}")  # a reminder's id, at most ROW_ID_MAX (checked on parse)
ROW_ID_MAX = 2**31 - 1  # a PostgreSQL integer: a bigger forged id would overflow the query
OWNER_MAX = 2**63 - 1  # a user or chat id: a BIGINT
ARGUMENT = {  # what each button's argument must look like
    Button.UNDO_SAVE: MEMORY_REF,
    Button.FORGET: MEMORY_REF,
    Button.RECALL_MORE: re.compile(r"[0-9]{1,4}"),
    Button.LIST_PAGE: re.compile(r"[0-9]{1,6}"),
    Button.CONFIRM_FORGET_ALL: NONCE,
    Button.CANCEL_FORGET_ALL: NONCE,
    Button.SEND_BROADCAST: NONCE,
    Button.CANCEL_BROADCAST: NONCE,
    Button.REMINDER_DONE: ROW_ID,
    Button.SNOOZE_HOUR: ROW_ID,
    Button.SNOOZE_TOMORROW: ROW_ID,
    Button.CANCEL_REMINDER: ROW_ID,
    Button.KEEP_BOTH: MEMORY_REF,
    Button.REPLACE_OLD: MEMORY_PAIR,
}
CALLBACK = re.compile(
    "(" + "|".join(re.escape(code) for code in Button) + r"):(-?[0-9]{1,19}):([0-9a-f]{0,32})"
)


@dataclass(frozen=True)
class Callback:
    """A parsed button press: what it does, whose button it is, and its argument."""

    button: Button
    owner: int
    arg: str

    def encode(self) -> str:
        """The callback data sent with the button."""
        return f"{self.button.value}:{self.owner}:{self.arg}"


def parse_callback(data: str | None) -> Callback | None:
    """The callback, or None when the data is malformed (forged or from an old version)."""
    match = CALLBACK.fullmatch(data or "")
    if match is None:
        return None
    pressed = Button(match.group(1))
    owner, arg = int(match.group(2)), match.group(3)
    if not ARGUMENT[pressed].fullmatch(arg) or abs(owner) > OWNER_MAX:
        return None
    if ARGUMENT[pressed] is ROW_ID and int(arg) > ROW_ID_MAX:
        return None
    return Callback(pressed, owner, arg)


def button(text: str, pressed: Button, owner: int, arg: str = "") -> InlineKeyboardButton:
    """One inline button that calls back with `pressed` for `owner`."""
    return InlineKeyboardButton(text, callback_data=Callback(pressed, owner, arg).encode())


def undo_keyboard(owner: int, short_id: str) -> InlineKeyboardMarkup:
    """The Undo button under a save confirmation."""
    return InlineKeyboardMarkup([[button("↩️ Undo", Button.UNDO_SAVE, owner, short_id)]])


def recall_keyboard(
    owner: int, short_ids: list[str], *, start: int, more: bool
) -> InlineKeyboardMarkup | None:
    """A 🗑 button per shown result, and More when there are further results."""
    rows = (
        [
            [
                button(f"🗑 {start + i + 1}", Button.FORGET, owner, short_id)
                for i, short_id in enumerate(short_ids)
            ]
        ]
        if short_ids
        else []
    )
    if more:
        rows.append([button("More ▶", Button.RECALL_MORE, owner, str(start + len(short_ids)))])
    return InlineKeyboardMarkup(rows) if rows else None


def list_keyboard(
    owner: int, *, offset: int, limit: int, total: int
) -> InlineKeyboardMarkup | None:
    """Newer / Older buttons around one page of /list."""
    row = []
    if offset > 0:
        row.append(button("◀ Newer", Button.LIST_PAGE, owner, str(max(0, offset - limit))))
    if offset + limit < total:
        row.append(button("Older ▶", Button.LIST_PAGE, owner, str(offset + limit)))
    return InlineKeyboardMarkup([row]) if row else None


def confirm_keyboard(owner: int, nonce: str) -> InlineKeyboardMarkup:
    """Yes / Cancel under the /forget_all question."""
    return InlineKeyboardMarkup(
        [
            [
                button("🗑 Yes, forget everything", Button.CONFIRM_FORGET_ALL, owner, nonce),
                button("Cancel", Button.CANCEL_FORGET_ALL, owner, nonce),
            ]
        ]
    )


def broadcast_keyboard(owner: int, nonce: str) -> InlineKeyboardMarkup:
    """Send / Cancel under a broadcast preview."""
    return InlineKeyboardMarkup(
        [
            [
                button("📣 Send", Button.SEND_BROADCAST, owner, nonce),
                button("Cancel", Button.CANCEL_BROADCAST, owner, nonce),
            ]
        ]
    )
