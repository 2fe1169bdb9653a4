"""The /control/* HTTP endpoints that let an out-of-process driver act as users and faults."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from botapi_emulator.chat_senders import ChatSenders
from botapi_emulator.group_setup import GroupSetup
from botapi_emulator.state import EmulatorState
from botapi_emulator.users import UserActivity


class ControlApi:
    """JSON endpoints mirroring the in-process API: inject, break things, observe."""

    def __init__(
        self, state: EmulatorState, users: UserActivity, groups: GroupSetup, senders: ChatSenders
    ) -> None:
        self._state = state
        self._users = users
        self._groups = groups
        self._senders = senders

    def add_routes(self, app: web.Application) -> None:
        """Register every /control/ route on `app`."""
        control = {"message": self._message, "edit": self._edit, "press": self._press}
        control |= {"fault": self._fault, "slow": self._slow, "block": self._block}
        control |= {"group": self._group, "anonymous": self._anonymous}
        control |= {"channel_forward": self._channel_forward}
        for name, handler in control.items():
            app.router.add_post(f"/control/{name}", handler)
        app.router.add_get("/control/sent", self._sent)
        app.router.add_get("/control/state", self._state_summary)
        app.router.add_get("/control/commands", self._commands)

    async def _message(self, request: web.Request) -> web.Response:
        body = await request.json()
        message_id = self._users.user_message(
            int(body["user_id"]),
            str(body["text"]),
            chat_id=body.get("chat_id"),
            first_name=body.get("first_name", "Test"),
            username=body.get("username"),
            reply_to=body.get("reply_to"),
            thread_id=body.get("thread_id"),
        )
        return web.json_response({"message_id": message_id})

    async def _group(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._groups.create_group(
            int(body["chat_id"]),
            title=str(body["title"]),
            kind=body.get("kind", "supergroup"),
            forum=bool(body.get("forum", False)),
            admins=[int(a) for a in body.get("admins", [])],
            members=[int(m) for m in body.get("members", [])],
            creator=body.get("creator"),
        )
        return web.json_response({"ok": True})

    async def _anonymous(self, request: web.Request) -> web.Response:
        body = await request.json()
        message_id = self._senders.anonymous_admin_message(
            int(body["chat_id"]),
            str(body["text"]),
            reply_to=body.get("reply_to"),
            thread_id=body.get("thread_id"),
            author_signature=body.get("author_signature"),
        )
        return web.json_response({"message_id": message_id})

    async def _channel_forward(self, request: web.Request) -> web.Response:
        body = await request.json()
        message_id = self._senders.channel_forward(
            int(body["chat_id"]), int(body["channel_id"]), str(body["text"])
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

    async def _commands(self, request: web.Request) -> web.Response:
        rows = [
            {"scope": scope.as_json(), "language_code": language, "commands": commands}
            for scope, language, commands in self._state.command_sets.entries()
        ]
        return web.json_response(rows)
