"""Reminders: /remind, /reminders, /timezone and the buttons under them."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update

from bot.actors import actor_of, thread_of
from bot.context import BotContext
from bot.handlers.common import command_payload, edit_quietly, pressed, reply, warn
from bot.keyboards import Button, Callback, button
from bot.reminder_delivery import delivery_text
from bot.replies import esc, preview
from engine.clock import utcnow
from engine.errors import InvalidInput
from engine.reminders import Reminder, snooze_time
from engine.schedule import EXAMPLES
from engine.zones import show, zone

USAGE = f"Tell me when and what, e.g.\n{esc(EXAMPLES)}\nTimes are in your /timezone."
FIRST_TIME_NOTE = (
    "\n\nℹ️ Times are read in UTC. Set your own zone once with "
    "/timezone <i>Area/City</i>, e.g. /timezone Europe/Berlin"
)
GONE_NOTE = "This reminder is no longer scheduled."


def when_text(reminder: Reminder) -> str:
    """`Tue 24 Nov 2026, 09:00 Europe/Berlin` (and how it repeats)."""
    repeat = f" ({reminder.recurrence.describe()})" if reminder.recurrence else ""
    return f"{show(reminder.due_at, reminder.zone)}{repeat}"


async def remind_command(update: Update, context: BotContext) -> None:
    """/remind when text — remind this chat at that time (in the sender's time zone)."""
    message = update.effective_message
    assert message is not None
    payload = command_payload(message)
    if not payload:
        await reply(update, USAGE)
        return
    services = context.services
    actor = actor_of(update)
    user = None if actor.anonymous else await services.ensure_user(update)
    chosen = user.timezone if user is not None else "UTC"
    reminders = services.engine.reminders
    try:
        schedule = await reminders.parse(payload, timezone=chosen)
    except InvalidInput as error:
        await warn(update, error)
        return
    if await services.permit(update, write=True, stores=True) is None:
        return
    first = user is not None and chosen is None  # said once: UTC becomes their explicit choice
    users = services.engine.users
    try:
        reminder = await reminders.create(
            space_id=actor.space_id,
            user_id=actor.id,
            schedule=schedule,
            timezone=zone(chosen).key,
            topic_id=thread_of(update),
            chat_id=message.chat.id,
            message_id=message.message_id,
            also=users.timezone_step(user_id=actor.id, name="UTC") if first else None,
        )
    except InvalidInput as error:
        await warn(update, error)
        return
    note = FIRST_TIME_NOTE if first else ""
    await reply(
        update,
        f"⏰ I'll remind {'this chat' if actor.in_group else 'you'} on "
        f"<b>{when_text(reminder)}</b>: {esc(preview(reminder.text))}\n"
        f"<i>/reminders lists and cancels them.</i>{note}",
    )


async def reminders_command(update: Update, context: BotContext) -> None:
    """/reminders — upcoming reminders of this chat, each with a cancel button."""
    actor = actor_of(update)
    upcoming = await context.services.engine.reminders.upcoming(space_id=actor.space_id)
    text, keyboard = reminders_list(upcoming, actor.id)
    await reply(update, text, keyboard)


def reminders_list(
    upcoming: list[Reminder], owner: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The /reminders text and its ✖ buttons."""
    if not upcoming:
        return "No upcoming reminders. Set one with /remind, e.g. /remind in 2h stretch", None
    lines = [
        f"{i}. <b>{when_text(r)}</b> — {esc(preview(r.text))}"
        for i, r in enumerate(upcoming, start=1)
    ]
    buttons = [
        button(f"✖ {i}", Button.CANCEL_REMINDER, owner, str(r.id))
        for i, r in enumerate(upcoming, start=1)
    ]
    rows = [buttons[i : i + 5] for i in range(0, len(buttons), 5)]
    return "⏰ <b>Upcoming reminders</b>\n" + "\n".join(lines), InlineKeyboardMarkup(rows)


async def timezone_command(update: Update, context: BotContext) -> None:
    """/timezone [Area/City] — show or set the zone reminders are read in."""
    message = update.effective_message
    assert message is not None
    name = command_payload(message)
    if actor_of(update).anonymous:
        await reply(update, "Reminders of anonymous admins are read in UTC.")
        return
    users = context.services.engine.users
    user = await context.services.ensure_user(update)
    if name:
        try:
            current = await users.set_timezone(user_id=user.id, name=name)
        except InvalidInput as error:
            await warn(update, error)
            return
        head = "Time zone set to"
    else:
        current, head = user.timezone or "UTC", "Your time zone is"
    now = show(utcnow(), zone(current))
    unset = "" if name or user.timezone else " (not chosen yet)"
    await reply(
        update,
        f"🌍 {head} <b>{esc(current)}</b>{unset}; it is {now} there.\n"
        "Change it with /timezone <i>Area/City</i>, e.g. /timezone America/New_York",
    )


async def reminder_pressed(update: Update, context: BotContext, callback: Callback) -> str:
    """✅ Done, 💤 1 h and 💤 tomorrow under a delivered reminder."""
    query = pressed(update)
    assert query.message is not None
    space, reminder_id = query.message.chat.id, int(callback.arg)
    reminders = context.services.engine.reminders
    reminder = await reminders.get(space_id=space, reminder_id=reminder_id)
    if reminder is None:
        return GONE_NOTE
    actor = actor_of(update)  # forged data may name someone else's reminder of this chat
    if reminder.user_id != actor.id and not await context.services.administers(context.bot, actor):
        return "Only who set it or a group admin can answer it."
    shown = delivery_text(reminder, late=False)
    if callback.button == Button.REMINDER_DONE:
        await reminders.done(space_id=space, reminder_id=reminder_id)
        await edit_quietly(query, f"{shown}\n✅ Done", None)
        return "Done."
    kind = "hour" if callback.button == Button.SNOOZE_HOUR else "tomorrow"
    until = snooze_time(kind, now=utcnow(), timezone=reminder.timezone)
    moved = await reminders.snooze(space_id=space, reminder_id=reminder_id, until=until)
    if moved is None:
        return GONE_NOTE
    await edit_quietly(query, f"{shown}\n💤 Snoozed until {when_text(moved)}", None)
    return "Snoozed."


async def cancel_pressed(update: Update, context: BotContext, callback: Callback) -> str:
    """✖ under /reminders: cancel that reminder (in a group: its author or an admin)."""
    query = pressed(update)
    assert query.message is not None
    space, reminder_id = query.message.chat.id, int(callback.arg)
    services = context.services
    reminder = await services.engine.reminders.get(space_id=space, reminder_id=reminder_id)
    if reminder is None:
        return GONE_NOTE
    actor = actor_of(update)
    if reminder.user_id != actor.id and not await services.administers(context.bot, actor):
        return "Only who set it or a group admin can cancel it."
    await services.engine.reminders.cancel(space_id=space, reminder_id=reminder_id)
    upcoming = await services.engine.reminders.upcoming(space_id=space)
    text, keyboard = reminders_list(upcoming, callback.owner)
    await edit_quietly(query, text, keyboard)
    return "Cancelled."
