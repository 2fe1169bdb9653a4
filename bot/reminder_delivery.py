"""How a due reminder is sent: its text, its buttons, and Telegram's errors for the worker."""

from __future__ import annotations

from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import ParseMode

from bot.broadcasting import send_errors_mapped
from bot.keyboards import Button, button
from bot.replies import esc
from engine.reminders import Reminder
from engine.zones import show
from jobs.reminders import SendReminder


def delivery_text(reminder: Reminder, late: bool) -> str:
    """The message a reminder is delivered as."""
    note = f"\n<i>(late) it was due {show(reminder.due_at, reminder.zone)}</i>" if late else ""
    return f"⏰ {esc(reminder.text)}{note}"


def delivery_keyboard(reminder: Reminder) -> InlineKeyboardMarkup:
    """✅ Done, 💤 1 h, 💤 tomorrow under a delivered reminder (for the one who set it)."""
    owner, arg = reminder.user_id, str(reminder.id)
    return InlineKeyboardMarkup(
        [
            [
                button("✅ Done", Button.REMINDER_DONE, owner, arg),
                button("💤 1 h", Button.SNOOZE_HOUR, owner, arg),
                button("💤 tomorrow", Button.SNOOZE_TOMORROW, owner, arg),
            ]
        ]
    )


def reminder_sender(bot: Bot) -> SendReminder:
    """Send reminders through `bot` (its rate limiter applies), errors mapped for the worker."""

    async def send(reminder: Reminder, late: bool) -> int | None:
        with send_errors_mapped():
            message = await bot.send_message(
                reminder.space_id,
                delivery_text(reminder, late),
                parse_mode=ParseMode.HTML,
                reply_markup=delivery_keyboard(reminder),
                message_thread_id=reminder.topic_id,
            )
        return message.message_id

    return send
