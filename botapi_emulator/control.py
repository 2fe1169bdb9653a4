"""The /control/* HTTP endpoints that let an out-of-process driver act as users and faults."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from botapi_emulator.state import EmulatorState
from botapi_emulator.users import UserActivity


class ControlApi:
    """JSON endpoints mirroring the in-process API: inject, break things, observe."""

    def __init__(self, state: EmulatorState, users: UserActivity) -> None:
        self._state = state
        self._users = users

    def add_routes(self, app: web.Application) -> None:
        """Register every /control/ route on `app`."""
        control = {"message": self._message, "edit": self._edit, "press": self._press}
        control |= {"fault": self._fault, "slow": self._slow, "block": self._block}
        for name, handler in control.items():
            app.router.add_post(f"/control/{name}", handler)
        app.router.add_get("/control/sent", self._sent)
        app.router.add_get("/control/state", self._state_summary)

    async def _message(self, request: web.Request) -> web.Response:
        body = await request.json()
        message_id = self._users.user_message(
            int(body["user_id"]),
            str(body["text"]),
            chat_id=body.get("chat_id"),
            first_name=body.get("first_name", "Test"),
            username=body.get("username"),
        )
        return web.json_response({"message_id": message_id})

    async def _edit(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._users.user_edit(
            int(body["user_id"]),
            int(body["message_id"]),
            body["text"],
            chat_id=body.get("chat_id"),
        )
        return web.json_response({"ok": True})

    async def _press(self, request: web.Request) -> web.Response:
        body = await request.json()
        query_id = self._users.press_button(
            int(body["user_id"]),
            int(body["message_id"]),
            str(body["callback_data"]),
            chat_id=body.get("chat_id"),
        )
        return web.json_response({"callback_query_id": query_id})

    async def _fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._state.faults.fail(
            body["method"],
            status=int(body.get("status", 500)),
            times=int(body.get("times", 1)),
            retry_after=body.get("retry_after"),
            description=body.get("description"),
        )
        return web.json_response({"ok": True})

    async def _slow(self, request: web.Request) -> web.Response:
        body = await request.json()
        faults = self._state.faults
        faults.slow(body["method"], delay=float(body["delay"]), times=int(body.get("times", 1)))
        return web.json_response({"ok": True})

    async def _block(self, request: web.Request) -> web.Response:
        body = await request.json()
        faults = self._state.faults
        (faults.block if body.get("blocked", True) else faults.unblock)(int(body["user_id"]))
        return web.json_response({"ok": True})

    async def _sent(self, request: web.Request) -> web.Response:
        raw = request.query.get("chat_id")
        rows = []
        for msg in self._state.sent(int(raw) if raw else None):
            row = dataclasses.asdict(msg)
            row["document"] = None
            row["document_size"] = None if msg.document is None else len(msg.document)
            rows.append(row)
        return web.json_response(rows)

    async def _state_summary(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "confirmed_offset": self._state.updates.confirmed_offset,
                "pending_updates": self._state.pending_updates(),
                "calls": len(self._state.calls),
                "sent": len(self._state.sent()),
                "callback_answers": len(self._state.callback_answers),
            }
        )
