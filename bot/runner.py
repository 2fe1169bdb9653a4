"""Run the bot: intake (polling or webhook) into the inbox, the inbox worker, jobs; all
supervised, with SIGTERM finishing the work in hand within a bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.app import announce_commands, build_application, file_url_for
from bot.broadcasting import broadcast_worker
from bot.context import BotApplication, services_of
from bot.inbox_worker import InboxWorker
from bot.intake import POLL_TIMEOUT_S, PollingIntake
from bot.limiter import ChatRateLimiter
from bot.loop_lag import probe_loop_lag
from bot.ops_http import start_ops
from bot.processing import UpdateProcessor
from bot.reminder_delivery import reminder_sender
from bot.replies import esc, preview
from bot.supervise import supervised
from bot.telegram_http import AiohttpRequest
from engine.app import MemoryEngine, open_engine
from engine.breaker import Breakers
from engine.inbox import Inbox
from engine.memory import Memory
from engine.metrics import SEND_BUDGET, WORKERS_RUNNING
from engine.settings import Settings
from jobs.reminders import ReminderWorker
from jobs.runs import Notify
from jobs.scheduler import build_scheduler

log = logging.getLogger("memorybot.runner")


@dataclass
class BotRuntime:
    """A started bot: the Application, the engine, the inbox and the worker processing it."""

    app: BotApplication
    engine: MemoryEngine
    processor: UpdateProcessor
    inbox: Inbox
    breakers: Breakers
    worker: InboxWorker
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def spawn(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start `run` as a supervised task (restarted with backoff when it fails)."""
        self.tasks.append(asyncio.create_task(supervised(name, run), name=name))


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings,
    *,
    token: str | None = None,
    base_url: str | None = None,
    background: bool = True,
) -> AsyncIterator[BotRuntime]:
    """Engine + Application started, the inbox worker running (and, with `background`, the
    scheduler and the broadcast worker); all stopped and closed on exit."""
    engine = await open_engine(settings)
    app = build_application(settings, engine, token=token, base_url=base_url)
    scheduler = build_scheduler(engine, notify=expiry_notifier(app))
    breakers = Breakers(
        engine.stores, failures=settings.breaker_failures, probe_s=settings.breaker_probe_s
    )
    try:
        await app.initialize()
        await announce_commands(app)
        await engine.stores.embedder.warm_up()
        await app.start()
        inbox = Inbox(engine.stores)
        await inbox.release_stale()
        processor = UpdateProcessor(app)
        worker = InboxWorker(
            processor, inbox, breakers, settings, on_workers=sharing(app.bot.rate_limiter)
        )
        runtime = BotRuntime(app, engine, processor, inbox, breakers, worker)
        ops = await start_ops(settings, engine.stores, breakers)  # METRICS_PORT
        runtime.spawn("inbox", worker.run)
        runtime.spawn("leases", worker.heartbeat)
        sender: Bot | None = None
        delivery = None
        reminding: ReminderWorker | None = None
        if background:
            scheduler.start()
            api = base_url or settings.telegram_api_base_url
            sender = Bot(
                app.bot.token,
                base_url=api,
                base_file_url=file_url_for(api),
                request=AiohttpRequest(),
            )
            await sender.initialize()
            delivery = broadcast_worker(app, engine, sender)
            services_of(app.bot_data).wake_broadcasts = delivery.wake
            runtime.spawn("broadcasts", delivery.run)
            reminding = ReminderWorker(
                outbox=engine.reminders.outbox, send=reminder_sender(app.bot)
            )
            runtime.spawn("reminders", reminding.run)
        lag_probe = asyncio.create_task(probe_loop_lag(), name="loop-lag")  # ends below
        try:
            yield runtime
        finally:
            lag_probe.cancel()
            if ops is not None:
                await ops.cleanup()
            worker.stop()
            if delivery is not None:
                delivery.stop()  # the send in hand finishes and is marked
            if reminding is not None:
                reminding.stop()
            await _finish(runtime.tasks, settings.shutdown_grace_s + 5)
            await processor.services.recalls.aclose()  # the memos noted last
            if sender is not None:
                await sender.shutdown()
            if scheduler.running:
                scheduler.shutdown(wait=False)
            await app.stop()
            await app.shutdown()
    finally:
        await breakers.aclose()
        await engine.aclose()


def sharing(limiter: object) -> Callable[[int], None]:
    """What a heartbeat does with the number of running workers: split the send budget."""

    def on_workers(workers: int) -> None:
        WORKERS_RUNNING.set(workers)
        if isinstance(limiter, ChatRateLimiter):
            limiter.share(workers)
            SEND_BUDGET.set(limiter.per_second or 0)

    return on_workers


async def _finish(tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
    """Wait for stopped tasks to return; cancel what is still running after `timeout_s`."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=timeout_s)
    for task in late:
        log.warning("task=%s did not stop in time; cancelled", task.get_name())
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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


def on_stop_signals(action: Callable[[], None]) -> None:
    """SIGTERM / SIGINT: stop taking new updates, finish the ones in hand."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, action)


def polling_intake(runtime: BotRuntime, *, poll_timeout_s: int = POLL_TIMEOUT_S) -> PollingIntake:
    """getUpdates into the runtime's inbox through its worker, which claims what it can in
    the same transaction (what it cannot take yet is claimed when a lane ends)."""
    return PollingIntake(
        runtime.app.bot,
        runtime.inbox,
        runtime.breakers,
        store=runtime.worker.store,
        poll_timeout_s=poll_timeout_s,
        delay_notice_s=runtime.engine.settings.delay_notice_s,
    )


async def run_polling(
    settings: Settings,
    *,
    token: str | None = None,
    base_url: str | None = None,
    poll_timeout_s: int = POLL_TIMEOUT_S,
) -> int:
    """Long-poll getUpdates until SIGTERM; an update is confirmed once it is in the inbox."""
    async with running_bot(settings, token=token, base_url=base_url) as runtime:
        await runtime.app.bot.delete_webhook()
        intake = polling_intake(runtime, poll_timeout_s=poll_timeout_s)
        on_stop_signals(intake.stop)
        log.info("polling started")
        await supervised("intake", intake.run)
        log.info("polling stopped; finishing the updates in hand")
    return 0
