"""The operations endpoint (`METRICS_PORT`): GET /healthz and GET /metrics (Prometheus).

/healthz answers 200 `{"status": "ok"}` when SQL and Chroma answer and no circuit breaker is
open, else 503 `{"status": "unavailable", "reasons": [...]}`. /metrics reads the state gauges
(inbox, breakers, sweep, broadcasts, reminders) at scrape time, then renders the registry.
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.breaker import Breakers
from engine.metrics import REGISTRY, Health, refresh_state
from engine.settings import Settings
from engine.stores import Stores

log = logging.getLogger("memorybot.ops")


def ops_app(stores: Stores, breakers: Breakers) -> web.Application:
    """aiohttp app serving /healthz and /metrics for one bot process."""
    health = Health(stores, breakers)

    async def healthz(_request: web.Request) -> web.Response:
        """200 when the stores answer and no breaker is open; else 503 with the reasons."""
        reasons = await health.reasons()
        if reasons:
            return web.json_response({"status": "unavailable", "reasons": reasons}, status=503)
        return web.json_response({"status": "ok"})

    async def metrics(_request: web.Request) -> web.Response:
        """The Prometheus text format of this process's metrics."""
        await refresh_state(stores, breakers)
        body = generate_latest(REGISTRY)  # right after the refresh: no other scrape between
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def start_ops(
    settings: Settings, stores: Stores, breakers: Breakers
) -> web.AppRunner | None:
    """Serve the endpoint on METRICS_HOST:METRICS_PORT; None when no port is set.

    The caller stops it with `await runner.cleanup()`.
    """
    if settings.metrics_port is None:
        return None
    runner = web.AppRunner(ops_app(stores, breakers), access_log=None, shutdown_timeout=2)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
    except OSError:
        await runner.cleanup()
        raise
    log.info("ops endpoint on %s:%d", settings.metrics_host, settings.metrics_port)
    return runner
