"""Assemble the python-telegram-bot Application from settings and the engine, in one place."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.actors import admitted
from bot.context import CONTEXT_TYPES, BotApplication, BotContext, services_of
from bot.handlers.admin import audit_command, dlq_command, role_command, stats_command
from bot.handlers.basics import cancel, help_command, not_text, start
from bot.handlers.broadcast import (
    broadcast_cancel_command,
    broadcast_command,
    broadcast_status_command,
)
from bot.handlers.changing import edit_command, export_command, forget_command
from bot.handlers.common import reply
from bot.handlers.importing import import_command
from bot.handlers.listing import list_command, tags_command
from bot.handlers.reminding import remind_command, reminders_command, timezone_command
from bot.handlers.router import addressed_to_me, button_pressed, file_message, plain_message
from bot.handlers.saving import SAVE_COMMAND, edited_message, save_command
from bot.handlers.searching import forget_all_command, recall_command
from bot.limiter import ChatRateLimiter
from bot.logsafe import log_failure
from bot.menus import menus_of
from bot.migration import chat_migrated, follow_in_background
from bot.services import KEY, BotServices
from bot.telegram_http import AiohttpRequest
from engine.app import MemoryEngine
from engine.settings import Settings

log = logging.getLogger("memorybot.bot")
NEW = filters.UpdateType.MESSAGE
TEXTUAL = filters.TEXT | filters.CAPTION


async def gate(update: Update, context: BotContext) -> None:
    """Stop what is not ours (see `bot.actors.admitted`); make a private sender a known,
    active user (again at once after a block)."""
    if not admitted(update):
        raise ApplicationHandlerStop
    chat = update.effective_chat
    talks = update.message is not None or update.callback_query is not None  # not a block
    if talks and chat is not None and chat.type == ChatType.PRIVATE:
        known = await context.services.welcome(update, may_save=may_save(update))
        await menus_of(context.bot_data).follow(context.bot, known.id, known.role)


def may_save(update: Update) -> bool:
    """A new message that may become a memory: the sender's registration, if one is due,
    can ride in the save's transaction (written at the end of the update otherwise)."""
    message = update.message
    text = (message.text or message.caption or "") if message is not None else ""
    return bool(text) and (not text.startswith("/") or SAVE_COMMAND.match(text) is not None)


async def unknown_command(update: Update, context: BotContext) -> None:
    """Point at /help for commands we do not know (in a group: only those named @us)."""
    message = update.effective_message
    assert message is not None
    text = message.text or ""
    named = "@" in (text.split(maxsplit=1) or [""])[0]  # `/cmd` alone may be another bot's
    private = message.chat.type == ChatType.PRIVATE
    if (private or named) and addressed_to_me(text, context.bot.username):
        await reply(update, "I don't know that command. See /help.")


async def record_failure(update: object, context: BotContext) -> None:
    """The one error handler: hand the failure to intake (which retries or parks it)."""
    if isinstance(update, Update) and context.error is not None:
        context.services.failures[update.update_id] = context.error
    elif context.error is not None:
        log_failure(log, "error outside an update", error=context.error)


def file_url_for(base_url: str) -> str:
    """https://api.telegram.org/bot → https://api.telegram.org/file/bot"""
    head, _, tail = base_url.rstrip("/").rpartition("/")
    return f"{head}/file/{tail}"


def build_application(
    settings: Settings,
    engine: MemoryEngine,
    *,
    token: str | None = None,
    base_url: str | None = None,
) -> BotApplication:
    """The bot: handlers, rate limiter and error handler; our own intake feeds it updates."""
    secret = token or (
        settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    )
    api = base_url or settings.telegram_api_base_url
    limiter = ChatRateLimiter(settings.telegram_max_rate)
    app = (
        Application.builder()
        .context_types(CONTEXT_TYPES)
        .token(secret)
        .base_url(api)
        .base_file_url(file_url_for(api))
        .rate_limiter(limiter)
        .request(AiohttpRequest())  # bot/telegram_http.py says why not httpx
        .get_updates_request(AiohttpRequest(pool_size=1))
        .updater(None)
        .job_queue(None)  # jobs run in APScheduler under the leader lock (jobs/)
        .build()
    )
    services = app.bot_data[KEY] = BotServices.create(engine)
    limiter.on_migrated = lambda old, new: follow_in_background(services, old, new)
    commands = {
        "start": start,
        "help": help_command,
        "cancel": cancel,
        "save": save_command,
        "recall": recall_command,
        "search": recall_command,
        "list": list_command,
        "tags": tags_command,
        "edit": edit_command,
        "forget": forget_command,
        "forget_all": forget_all_command,
        "export": export_command,
        "remind": remind_command,
        "reminders": reminders_command,
        "timezone": timezone_command,
        "import": import_command,
        "stats": stats_command,
        "role": role_command,
        "audit": audit_command,
        "dlq": dlq_command,
        "broadcast": broadcast_command,
        "broadcast_status": broadcast_status_command,
        "broadcast_cancel": broadcast_cancel_command,
    }
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, chat_migrated), group=-2)
    app.add_handler(TypeHandler(Update, gate), group=-1)
    for name, handler in commands.items():
        app.add_handler(CommandHandler(name, handler, filters=NEW))
    app.add_handler(CallbackQueryHandler(button_pressed))
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE & TEXTUAL, edited_message))
    app.add_handler(MessageHandler(NEW & filters.COMMAND, unknown_command))
    app.add_handler(MessageHandler(NEW & TEXTUAL, plain_message))
    app.add_handler(MessageHandler(NEW & filters.Document.ALL & ~TEXTUAL, file_message))
    app.add_handler(MessageHandler(NEW & filters.ChatType.PRIVATE & ~TEXTUAL, not_text))
    app.add_error_handler(record_failure)
    return app


async def announce_commands(app: BotApplication) -> None:
    """Publish the command menus per role (see `bot.menus`), after the engine's ADMIN_USER_IDS
    sync; a failure is logged, never fatal."""
    admin = services_of(app.bot_data).engine.admin
    admins = await admin.admin_ids()
    await menus_of(app.bot_data).publish(app.bot, admins=admins, demoted=admin.demoted_at_sync)
