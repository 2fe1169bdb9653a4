"""/import: memories from a file — the JSON that /export sends, or paragraphs of text."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from telegram import Message, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.actors import actor_of
from bot.context import BotContext
from bot.conversations import Awaiting
from bot.deadline import extend_deadline
from bot.handlers.common import ask, reply, warn
from bot.handlers.guards import group_admin_or_refuse
from bot.replies import esc
from engine.errors import InvalidInput, MemoryBotError
from engine.import_writes import ImportOutcome, import_memories
from engine.importing import MAX_IMPORT_BYTES, check_size, describe_size, parse_import

CHUNK_GRACE_S = 30.0  # each committed chunk gives the update this much more time
WHAT_TO_SEND = (
    "the .json file that /export sent, or a .txt or .md file with one memory per paragraph "
    f"(paragraphs separated by a blank line; at most {describe_size(MAX_IMPORT_BYTES)})"
)
NOT_A_FILE = f"Please send the file as a document: {WHAT_TO_SEND}."
STILL_WAITING = f"I'm waiting for the file to import: {WHAT_TO_SEND}. /cancel to stop."


async def import_command(update: Update, context: BotContext) -> None:
    """/import as the caption of a file imports it; /import alone asks for the file."""
    message = update.effective_message
    assert message is not None
    if message.document is not None:
        await import_file(update, context)
        return
    if message.text is None:  # a caption under a photo, a video…: not a file we read
        await reply(update, NOT_A_FILE)
        return
    if not await group_admin_or_refuse(update, context, "import"):
        return
    await ask(
        update,
        context,
        Awaiting.IMPORT_FILE,
        {},
        private=f"Send me the file to import: {WHAT_TO_SEND}. /cancel to stop.",
        group=f"Reply to this message with the file to import into this group: {WHAT_TO_SEND}.",
        placeholder="Attach the file to import",
    )


async def import_pending(
    update: Update, context: BotContext, text: str, payload: dict[str, Any]
) -> None:
    """`Awaiting.IMPORT_FILE`: a file imports; a text is answered and the wait goes on."""
    message = update.effective_message
    assert message is not None
    if message.document is not None:
        await import_file(update, context)
        return
    actor = actor_of(update)
    await context.services.conversations.set(
        actor.space_id, actor.id, Awaiting.IMPORT_FILE, payload
    )
    await reply(update, STILL_WAITING)


async def import_file(update: Update, context: BotContext) -> None:
    """Import this message's document into the chat's space (group admins only in groups)."""
    message = update.effective_message
    assert message is not None
    document = message.document
    if document is None:
        await reply(update, NOT_A_FILE)
        return
    if not await group_admin_or_refuse(update, context, "import"):
        return
    services = context.services
    try:
        check_size(document.file_size or 0)
    except InvalidInput as error:
        await warn(update, error)
        return
    actor = await services.permit(update, write=True, stores=True)
    if actor is None:
        return
    file = await context.bot.get_file(document.file_id)
    data = bytes(await file.download_as_bytearray())
    name = document.file_name or ""
    engine = services.engine
    try:
        items = await asyncio.to_thread(
            parse_import, data, file_name=name, limit=engine.settings.max_memory_chars
        )
    except InvalidInput as error:
        await reply(update, f"⚠️ {esc(str(error))} Nothing was imported.")
        return
    owner = None if actor.in_group or actor.anonymous else await services.ensure_user(update)
    shown = await reply(update, f"📥 Importing {len(items):,} memories…")
    assert shown is not None
    progress = ProgressMessage(shown)
    try:
        outcome = await import_memories(
            engine.stores,
            engine.quotas,
            space_id=actor.space_id,
            author_id=actor.id,
            items=items,
            owner=owner,
            on_progress=progress.chunk_done,
        )
    except InvalidInput as error:
        await progress.finish(f"⚠️ {esc(str(error))}")
        return
    except MemoryBotError:  # a store failed: the update is retried, and the retry imports
        await progress.finish(  # the rest (what committed is skipped as already here)
            f"⏸ The import paused at {progress.done:,} of {progress.total:,} new memories: "
            "the store did not answer. It goes on by itself; what was saved stays."
        )
        raise
    await progress.finish(summary(outcome, name))


def summary(outcome: ImportOutcome, file_name: str) -> str:
    """The closing line of an import."""
    noun = "memory" if outcome.added == 1 else "memories"
    was = "was" if outcome.present == 1 else "were"
    expired = f"; {outcome.expired:,} had expired and were skipped" if outcome.expired else ""
    return (
        f"📥 Imported <i>{esc(file_name)}</i>: added {outcome.added:,} new {noun}, "
        f"{outcome.present:,} {was} already here{expired}."
    )


class ProgressMessage:
    """One message edited as chunks commit ("Importing… 500/1,200"); edits never pile up."""

    def __init__(self, message: Message) -> None:
        self._message = message
        self._wanted = self._shown = message.text_html or ""
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        self.done = 0
        self.total = 0

    def chunk_done(self, done: int, total: int) -> None:
        """A chunk committed: `done` of `total` new memories are saved."""
        self.done, self.total = done, total
        extend_deadline(CHUNK_GRACE_S)  # progress, not a hang
        self._wanted = f"📥 Importing… {done:,}/{total:,}"
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._show_latest())

    async def _show_latest(self) -> None:
        while not self._closed and self._wanted != self._shown:
            text = self._wanted
            with contextlib.suppress(TelegramError):  # a lost progress edit is harmless
                await self._message.edit_text(text, parse_mode=ParseMode.HTML)
            self._shown = text

    async def finish(self, html: str) -> None:
        """Replace the progress with the final word."""
        self._closed = True  # no further progress edits
        if self._pump is not None:
            with contextlib.suppress(TelegramError):
                await self._pump
        await self._message.edit_text(html, parse_mode=ParseMode.HTML)
