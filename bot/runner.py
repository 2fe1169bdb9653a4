"""Run the bot: polling or webhook, with SIGTERM draining in-flight updates before exit."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web
from telegram import Bot, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.app import announce_commands, build_application, file_url_for
from bot.broadcasting import broadcast_worker
from bot.context import BotApplication, services_of
from bot.intake import POLL_TIMEOUT_S, PollingIntake
from bot.processing import UpdateProcessor, updates_from
from bot.replies import esc, preview
from engine.app import open_engine
from engine.memory import Memory
from engine.settings import Settings
from jobs.runs import Notify
from jobs.scheduler import build_scheduler

log = logging.getLogger("memorybot.runner")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, *, token: str | None = None, base_url: str | None = None
) -> AsyncIterator[UpdateProcessor]:
    """Engine + Application started and ready to process updates; all closed on exit."""
    engine = await open_engine(settings)
    app = build_application(settings, engine, token=token, base_url=base_url)
    scheduler = build_scheduler(engine, notify=expiry_notifier(app))
    try:
        await app.initialize()
        await announce_commands(app)
        await engine.stores.embedder.warm_up()
        await app.start()
        scheduler.start()
        api = base_url or settings.telegram_api_base_url
        sender = Bot(app.bot.token, base_url=api, base_file_url=file_url_for(api))
        await sender.initialize()
        worker = broadcast_worker(app, engine, sender)
        services_of(app.bot_data).wake_broadcasts = worker.wake
        delivering = asyncio.create_task(worker.run())
        try:
            yield UpdateProcessor(app)
        finally:
            worker.stop()
            await delivering  # the send in hand finishes and is marked
            await sender.shutdown()
            scheduler.shutdown(wait=False)
            await app.stop()
            await app.shutdown()
    finally:
        await engine.aclose()


def expiry_notifier(app: BotApplication) -> Notify:
    """Tell a space's chat (a user, or a group) which of its memories expired (used when
    EXPIRY_NOTIFY is on)."""

    async def notify(chat_id: int, memories: list[Memory]) -> None:
        lines = "\n".join(f"• {esc(preview(m.text))}" for m in memories[:20])
        more = f"\n…and {len(memories) - 20} more" if len(memories) > 20 else ""
        with contextlib.suppress(TelegramError):
            await app.bot.send_message(
                chat_id, f"⏳ These memories expired:\n{lines}{more}", parse_mode=ParseMode.HTML
            )

    return notify


def on_stop_signals(stop: asyncio.Event | PollingIntake) -> None:
    """SIGTERM / SIGINT: stop taking new updates, finish the ones in hand."""
    loop = asyncio.get_running_loop()
    action = stop.stop if isinstance(stop, PollingIntake) else stop.set
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, action)


async def run_polling(
    settings: Settings,
    *,
    token: str | None = None,
    base_url: str | None = None,
    poll_timeout_s: int = POLL_TIMEOUT_S,
) -> int:
    """Long-poll getUpdates until SIGTERM; every update is confirmed only once processed."""
    async with running_bot(settings, token=token, base_url=base_url) as processor:
        await processor.app.bot.delete_webhook()
        intake = PollingIntake(processor, poll_timeout_s=poll_timeout_s)
        on_stop_signals(intake)
        log.info("polling started")
        await intake.run()
        log.info("polling stopped; in-flight updates drained")
    return 0


def webhook_app(processor: UpdateProcessor, secret: str) -> web.Application:
    """aiohttp app answering 200 only after the update was processed (or parked)."""

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given, secret):
            return web.Response(status=403, text="forbidden")
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="not json")
        updates = updates_from([body] if isinstance(body, dict) else [], processor.app)
        await processor.process_batch(updates)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/telegram", receive)
    return app


async def run_webhook(settings: Settings) -> int:
    """Serve POST /telegram behind the secret token until SIGTERM, then drain."""
    if not settings.webhook_url or settings.webhook_secret is None:
        print("memorybot: --webhook needs WEBHOOK_URL and WEBHOOK_SECRET")
        return 2
    secret = settings.webhook_secret.get_secret_value()
    async with running_bot(settings) as processor:
        runner = web.AppRunner(webhook_app(processor, secret), shutdown_timeout=60)
        await runner.setup()
        site = web.TCPSite(runner, "0.0.0.0", settings.webhook_port)
        await site.start()
        await processor.app.bot.set_webhook(
            url=settings.webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES
        )
        stop = asyncio.Event()
        on_stop_signals(stop)
        log.info("webhook serving on port %d", settings.webhook_port)
        await stop.wait()
        await runner.cleanup()  # waits for requests in flight
    return 0
