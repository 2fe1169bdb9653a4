"""The aiohttp server: Bot API routes, file downloads and the control endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from botapi_emulator.control import ControlApi
from botapi_emulator.errors import ApiError
from botapi_emulator.methods import BotApiMethods
from botapi_emulator.params import Handler, loggable, read_params
from botapi_emulator.state import EmulatorState

log = logging.getLogger(__name__)


class ApiServer:
    """Serves `methods` and `control` over HTTP on host:port (port 0 picks a free one)."""

    def __init__(
        self,
        state: EmulatorState,
        methods: BotApiMethods,
        control: ControlApi,
        *,
        host: str,
        port: int,
    ) -> None:
        self.host = host
        self.port = port
        self._state = state
        self._methods = methods
        self._control = control
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve (port 0 picks a free port)."""
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_control_errors])
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._control.add_routes(app)
        self._state.updates.open()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Release long polls and shut the server down."""
        self._state.updates.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await read_params(request)
        self._state.record_call(method, {k: loggable(v) for k, v in params.items()})
        if request.match_info["token"] != self._state.token:
            return _error(ApiError(401, "Unauthorized"))
        handler = self._methods.handler(method)
        if handler is None:
            return _error(ApiError(404, "Not Found"))
        try:
            result = await self._call(method, handler, params)
        except ApiError as exc:
            return _error(exc)
        except Exception as exc:
            log.exception("emulator bug in %s", method)
            return _error(ApiError(500, f"Internal Server Error: emulator bug: {exc!r}"))
        return web.json_response({"ok": True, "result": result})

    async def _call(self, method: str, handler: Handler, params: dict[str, Any]) -> Any:
        faults = self._state.faults
        if delay := faults.take_delay(method):
            await asyncio.sleep(delay)
        if fault := faults.take_fault(method):
            raise fault
        return await handler(params)

    async def _download(self, request: web.Request) -> web.Response:
        parts = request.match_info["path"].split("/")
        upload = self._state.file(parts[1]) if len(parts) > 1 else None
        if request.match_info["token"] != self._state.token or upload is None:
            raise web.HTTPNotFound()
        return web.Response(body=upload.data, content_type=upload.mime_type)


@web.middleware
async def _control_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except (KeyError, ValueError, TypeError) as exc:
        if not request.path.startswith("/control/"):
            raise
        return web.json_response({"ok": False, "description": repr(exc)}, status=400)


def _error(exc: ApiError) -> web.Response:
    return web.json_response(exc.payload(), status=exc.status)
