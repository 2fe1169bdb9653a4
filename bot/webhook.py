"""Webhook intake: POST /telegram stores the update in the inbox, then answers 200.

Telegram retries an update until it gets a 2xx, so: a wrong (or non-ASCII) secret is a 403;
a body that is not an update is parked as a dead letter and answered 200 (retrying cannot
fix it); an inbox that cannot be written answers 503, and Telegram delivers it again later.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from aiohttp import web
from telegram import Update

from bot.lanes import lane_of
from bot.logsafe import describe_error
from bot.runner import BotRuntime, on_stop_signals, running_bot
from engine.breaker import store_of
from engine.inbox import Received
from engine.metrics import UPDATES_RECEIVED
from engine.settings import Settings

log = logging.getLogger("memorybot.webhook")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY_BYTES = 4 * 1024 * 1024


def _secret_matches(given: str, secret: str) -> bool:
    """Constant-time comparison that also works for non-ASCII header values."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode("utf-8"))


def webhook_app(runtime: BotRuntime, secret: str) -> web.Application:
    """aiohttp app answering 200 once the update is in the inbox."""

    async def receive(request: web.Request) -> web.Response:
        if not _secret_matches(request.headers.get(SECRET_HEADER, ""), secret):
            return web.Response(status=403, text="forbidden")
        body = await request.read()
        item = _update_in(body)
        if item is None:
            await _park_junk(runtime, body)
            return web.Response(text="ok")
        try:
            new = await runtime.inbox.store(
                [Received(int(item["update_id"]), lane_of(item), item)]
            )
        except Exception as error:
            log.warning("inbox store failed: %s", describe_error(error))
            if store_of(error) is not None:
                runtime.breakers.sql.failure(error)
            return web.Response(status=503, text="try again")
        UPDATES_RECEIVED.inc(new)
        # One update per POST: the worker claims for many at once after a wake (a claim with
        # each POST would run the claim query once per update).
        runtime.worker.wake()
        return web.Response(text="ok")

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/telegram", receive)
    return app


def _update_in(body: bytes) -> dict[str, Any] | None:
    """The JSON object of an update (an int update_id), or None."""
    try:
        item = json.loads(body)
    except ValueError:
        return None
    if not isinstance(item, dict):
        return None
    update_id = item.get("update_id")
    return item if isinstance(update_id, int) and not isinstance(update_id, bool) else None


async def _park_junk(runtime: BotRuntime, body: bytes) -> None:
    """Keep a body that is no update at all (update id 0) for an operator to look at."""
    text = body[:10_000].decode("utf-8", "replace")
    log.warning("webhook body is not an update (%d bytes); parked", len(body))
    try:
        await runtime.processor.services.ledger.park(
            update_id=0, chat_id=None, raw={"body": text}, error="not an update", attempts=1
        )
    except Exception as error:  # SQL down: nothing we could do for it anyway
        log.warning("could not park the body: %s", describe_error(error))


async def run_webhook(settings: Settings) -> int:
    """Serve POST /telegram behind the secret token until SIGTERM, then drain."""
    if not settings.webhook_url or settings.webhook_secret is None:
        print("memorybot: --webhook needs WEBHOOK_URL and WEBHOOK_SECRET")
        return 2
    secret = settings.webhook_secret.get_secret_value()
    async with running_bot(settings) as runtime:
        runner = web.AppRunner(webhook_app(runtime, secret), shutdown_timeout=10)
        await runner.setup()
        site = web.TCPSite(runner, "0.0.0.0", settings.webhook_port)
        await site.start()
        await runtime.app.bot.set_webhook(
            url=settings.webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES
        )
        stop = asyncio.Event()
        on_stop_signals(stop.set)
        log.info("webhook serving on port %d", settings.webhook_port)
        await stop.wait()
        await runner.cleanup()  # requests in flight finish storing
    return 0
