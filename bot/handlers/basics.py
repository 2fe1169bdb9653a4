"""/start, /help, /cancel and messages that carry no text."""

from __future__ import annotations

from telegram import Update

from bot.actors import actor_of
from bot.context import BotContext
from bot.handlers.common import reply

HELP = """<b>What I can do</b>
/save <i>text</i> — remember something (plain messages are saved too)
/save 7d <i>text</i> — remember it for 7 days (30m, 2h, 7d, 4w)
/recall <i>question</i> — find memories by meaning (also /search)
/list — your memories, newest first
/tags — your #tags, with how many memories carry each

<b>#tags and time</b>
A #word in a memory is its tag (any language: #work, #работа, #café).
/list #work — only memories tagged #work · /list since 2026-10-01
/recall #trip passport — search only memories tagged #trip
/recall passport last week · /list #work last week
Times (English, in your /timezone): today, yesterday, this/last week, this/last month,
last 7 days, in March, in march 2025, on 2026-10-01, since 2026-10-01, before 2026-10-01,
between 2026-10-01 and 2026-10-15 — at the start or end of the query.
/edit <i>id</i> <i>text</i> — change a memory, e.g. /edit 3f2a9c1b buy oat milk
/forget <i>id</i> — forget one memory
/forget_all — forget everything (asks first)
/export — all your memories as a JSON file
/import — send the /export JSON, or a .txt/.md (a memory per paragraph), captioned /import
/cancel — stop what I am waiting for

/save or /recall alone asks for the text in your next message.
The command menu (the / button) lists the commands you can use in each chat.

<b>Reminders</b>
/remind <i>when</i> <i>text</i> — I message you then, with ✅ Done and 💤 snooze buttons:
/remind in 2h take the pizza out (also in 30 min, in 1h 30m, in 45s)
/remind tomorrow 9:00 call the dentist · /remind fri 18:30 book a table
/remind 2026-12-24 10:00 buy a tree · /remind next monday team lunch (9:00 if no time)
/remind every monday 9:00 weekly report · /remind every day 8:00 vitamins
/reminders — upcoming reminders, each with a ✖ cancel button
/timezone <i>Area/City</i> — the zone times are read in, e.g. /timezone Europe/Berlin
(default UTC; /timezone alone shows it). A reminder is a memory too: /recall finds it.

<b>In groups</b>
Memories saved in a group belong to the group: every member can /recall and /list them, and
they never show anywhere else (your private memories never show in a group). I only read
commands there: /save or /recall alone asks you to <i>reply</i> to my question.
Editing or forgetting a memory is for its author or a group admin; /forget_all, /export
and /import are for group admins (the export comes to your private chat with me)."""

COMMANDS = [
    ("save", "Remember something: /save [7d] text"),
    ("recall", "Find memories by meaning"),
    ("search", "Same as /recall"),
    ("list", "This chat's memories: /list [#tag] [last week]"),
    ("tags", "This chat's #tags with counts"),
    ("edit", "Change a memory: /edit id text"),
    ("forget", "Forget one memory: /forget id"),
    ("forget_all", "Forget everything (asks first)"),
    ("export", "Download this chat's memories as JSON"),
    ("import", "Add memories from an /export file or a .txt/.md file"),
    ("remind", "Remind me: /remind tomorrow 9:00 call mom"),
    ("reminders", "Upcoming reminders (cancel them here)"),
    ("timezone", "Show or set your time zone"),
    ("cancel", "Stop what I am waiting for"),
    ("help", "How to use me"),
]


GROUP_WELCOME = (
    "👋 I remember things for this group.\n"
    "Save with /save <i>text</i>; find it with /recall <i>question</i> — every member can.\n"
    "See /help for everything else."
)


async def start(update: Update, context: BotContext) -> None:
    """Explain the bot in three lines (the gate registered a private sender already)."""
    if actor_of(update).in_group:
        await reply(update, GROUP_WELCOME)
        return
    await reply(
        update,
        "👋 I remember things for you.\n"
        "Send me any text to save it; ask with /recall <i>question</i> to find it by meaning.\n"
        "See /help for everything else (lists, edits, expiry, export).",
    )


async def help_command(update: Update, context: BotContext) -> None:
    """List every command with an example."""
    await reply(update, HELP)


async def cancel(update: Update, context: BotContext) -> None:
    """Reset the conversation state of the sender in this chat."""
    conversations = context.services.conversations
    actor = actor_of(update)
    pending = await conversations.get(actor.space_id, actor.id)
    await conversations.clear(actor.space_id, actor.id)
    await reply(update, "Cancelled." if pending else "Nothing to cancel.")


async def not_text(update: Update, context: BotContext) -> None:
    """Explain that only text (or captions) can be remembered."""
    await reply(
        update, "I can only remember text. Send me words, or a photo or file with a caption."
    )
