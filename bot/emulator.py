"""A local Telegram Bot API emulator (aiohttp) that the real python-telegram-bot talks to."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.emulator_state import (
    MAX_CAPTION,
    MAX_TEXT,
    ApiError,
    EmulatorState,
    SentMessage,
    Upload,
    bad_request,
    check_markup,
    format_text,
)

__all__ = ["ApiError", "BotApiEmulator", "SentMessage"]

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], Awaitable[Any]]
_JSON_KEYS = (
    "reply_markup",
    "entities",
    "caption_entities",
    "link_preview_options",
    "reply_parameters",
    "commands",
    "scope",
    "allowed_updates",
)
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_ACCEPTED = ("setmydescription", "setmyshortdescription", "setmyname", "setchatmenubutton")


def _int(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {key} specified") from None


def _flag(params: dict[str, Any], key: str) -> bool:
    return params.get(key) in (True, "true", "True", "1", 1)


def _not_modified() -> ApiError:
    return bad_request(
        "message is not modified: specified new message content and reply markup are exactly "
        "the same as a current content and reply markup of the message"
    )


class BotApiEmulator(EmulatorState):
    """An in-process Telegram Bot API server with user-activity injection and fault knobs."""

    def __init__(
        self,
        *,
        token: str = "123456:TEST",
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "memorybot_test_bot",
    ) -> None:
        super().__init__(token, bot_username)
        self.host = host
        self.port = port
        self.webhook_url = ""
        self._command_sets: dict[str, list[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._methods: dict[str, Handler] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_text,
            "editmessagereplymarkup": self._edit_markup,
            "answercallbackquery": self._answer_callback,
            "senddocument": self._send_document,
            "sendchataction": self._chat_action,
            "deletemessage": self._delete_message,
            "setmycommands": self._set_commands,
            "getmycommands": self._get_commands,
            "deletemycommands": self._delete_commands,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._webhook_info,
            "getfile": self._get_file,
            "getchat": self._get_chat,
            "close": self._true,
            "logout": self._true,
            **dict.fromkeys(_ACCEPTED, self._true),
        }

    @property
    def base_url(self) -> str:
        """Pass as Bot(base_url=...); PTB appends the token and the method."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """Pass as Bot(base_file_url=...)."""
        return f"http://{self.host}:{self.port}/file/bot"

    async def start(self) -> None:
        """Bind and serve (port 0 picks a free port)."""
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_control_errors])
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        control = {"message": self._c_message, "edit": self._c_edit, "press": self._c_press}
        control |= {"fault": self._c_fault, "slow": self._c_slow, "block": self._c_block}
        for name, handler in control.items():
            app.router.add_post(f"/control/{name}", handler)
        app.router.add_get("/control/sent", self._c_sent)
        app.router.add_get("/control/state", self._c_state)
        self._stopping = False
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Release long polls and shut the server down."""
        self._stopping = True
        self.updates_signal.fire()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- HTTP plumbing -----------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._read_params(request)
        logged = {k: _loggable(v) for k, v in params.items()}
        self.calls.append((time.monotonic(), method, logged))
        if request.match_info["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        handler = self._methods.get(method.lower())
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
        if delay := self.take_delay(method):
            await asyncio.sleep(delay)
        if fault := self.take_fault(method):
            raise fault
        return await handler(params)

    @staticmethod
    async def _read_params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            params.update(body if isinstance(body, dict) else {})
        elif request.can_read_body:
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    params[key] = Upload(value.filename, data, value.content_type)
                else:
                    params[key] = value.decode() if isinstance(value, bytes) else value
        for key in _JSON_KEYS:
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):  # else left a string: the method says 400
                    params[key] = json.loads(params[key])
        return params

    async def _download(self, request: web.Request) -> web.Response:
        parts = request.match_info["path"].split("/")
        upload = self._files.get(parts[1]) if len(parts) > 1 else None
        if request.match_info["token"] != self.token or upload is None:
            raise web.HTTPNotFound()
        return web.Response(body=upload.data, content_type=upload.mime_type)

    # ---- Bot API methods ---------------------------------------------------------------------
    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bot_user | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = _int(params, "offset")
        limit = min(max(_int(params, "limit") or 100, 1), 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        if offset is not None:
            self._confirm(offset)
        while True:
            batch = sorted(
                (u for u in self._updates if offset is None or u["update_id"] >= offset),
                key=lambda u: int(u["update_id"]),
            )[:limit]
            left = deadline - time.monotonic()
            if batch or self._stopping or left <= 0:
                return batch
            await self.updates_signal.wait(left)

    def _confirm(self, offset: int) -> None:
        if offset < 0:
            self._updates = self._updates[offset:]
            return
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        self.confirmed_offset = max(self.confirmed_offset, offset)

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        text = str(params.get("text") or "")
        mode = params.get("parse_mode") or None
        plain, entities = format_text(text, mode, params.get("entities"), limit=MAX_TEXT)
        sent = SentMessage(
            chat_id,
            self.next_message_id(chat_id),
            text,
            mode,
            check_markup(params.get("reply_markup")),
            date=int(time.time()),
            plain=plain,
            entities=entities,
            reply_to=self._reply_to(chat_id, params),
        )
        self.record_sent(sent)
        return self.bot_message(sent)

    async def _edit_text(self, params: dict[str, Any]) -> dict[str, Any]:
        sent = self._find(params, "message to edit not found")
        if sent.document is not None:
            raise bad_request("there is no text in the message to edit")
        text = str(params.get("text") or "")
        mode = params.get("parse_mode") or None
        plain, entities = format_text(text, mode, params.get("entities"), limit=MAX_TEXT)
        markup = check_markup(params.get("reply_markup"))
        if (plain, entities, markup) == (sent.plain, sent.entities, sent.reply_markup):
            raise _not_modified()
        sent.text, sent.parse_mode, sent.plain, sent.entities = text, mode, plain, entities
        return self._edited(sent, markup)

    async def _edit_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        sent = self._find(params, "message to edit not found")
        markup = check_markup(params.get("reply_markup"))
        if markup == sent.reply_markup:
            raise _not_modified()
        return self._edited(sent, markup)

    def _edited(self, sent: SentMessage, markup: dict[str, Any] | None) -> dict[str, Any]:
        sent.reply_markup, sent.edits, sent.edit_date = markup, sent.edits + 1, int(time.time())
        self.sent_signal.fire()
        return self.bot_message(sent)

    async def _answer_callback(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._callbacks:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._callbacks.discard(query_id)
        self.callback_answers.append(
            {
                "callback_query_id": query_id,
                "text": params.get("text"),
                "show_alert": _flag(params, "show_alert"),
            }
        )
        return True

    async def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        doc = params.get("document")
        if isinstance(doc, str) and doc in self._files:
            file_id = doc
        elif isinstance(doc, Upload):
            file_id = self.store_file(doc)["file_id"]
        else:
            raise bad_request("there is no document in the request")
        upload = self._files[file_id]
        caption = params.get("caption") or None
        mode = params.get("parse_mode") or None
        plain: str | None = None
        entities: list[dict[str, Any]] = []
        if caption is not None:
            plain, entities = format_text(
                caption, mode, params.get("caption_entities"), limit=MAX_CAPTION, what="caption"
            )
        sent = SentMessage(
            chat_id,
            self.next_message_id(chat_id),
            None,
            mode,
            check_markup(params.get("reply_markup")),
            upload.data,
            upload.file_name,
            caption,
            date=int(time.time()),
            plain=plain,
            entities=entities,
            reply_to=self._reply_to(chat_id, params),
            file_id=file_id,
        )
        self.record_sent(sent)
        return self.bot_message(sent)

    async def _chat_action(self, params: dict[str, Any]) -> bool:
        self._chat_id(params)
        return True

    async def _delete_message(self, params: dict[str, Any]) -> bool:
        chat_id = self._chat_id(params)
        key = (chat_id, _int(params, "message_id") or 0)
        if self._user_msgs.pop(key, None) is not None:
            return True
        self._find(params, "message to delete not found").deleted = True
        self.sent_signal.fire()
        return True

    async def _set_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        for item in commands:
            if not isinstance(item, dict) or not _COMMAND.fullmatch(str(item.get("command"))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(item.get("description") or "")) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self._command_sets[_scope_key(params)] = commands
        self.commands = commands
        return True

    async def _get_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self._command_sets.get(_scope_key(params), [])

    async def _delete_commands(self, params: dict[str, Any]) -> bool:
        if self._command_sets.pop(_scope_key(params), None) is self.commands:
            self.commands = []
        return True

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = ""
        if _flag(params, "drop_pending_updates"):
            self._updates.clear()
        return True

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = str(params.get("url") or "")
        if _flag(params, "drop_pending_updates"):
            self._updates.clear()
        return True

    async def _webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": self.pending_updates(),
        }

    async def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = str(params.get("file_id") or "")
        upload = self._files.get(file_id)
        if upload is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": file_id,
            "file_unique_id": f"U{file_id[4:10]}",
            "file_size": len(upload.data),
            "file_path": f"documents/{file_id}/{upload.file_name}",
        }

    async def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = _int(params, "chat_id")
        if chat_id is None or chat_id not in self._chats:
            raise bad_request("chat not found")
        return self.chat(chat_id) | {"accent_color_id": 0, "max_reaction_count": 11}

    # ---- method helpers ----------------------------------------------------------------------
    def _chat_id(self, params: dict[str, Any]) -> int:
        chat_id = _int(params, "chat_id")
        if chat_id is None:
            raise bad_request("chat not found")
        self.check_chat(chat_id)
        return chat_id

    def _find(self, params: dict[str, Any], missing: str) -> SentMessage:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the emulator")
        chat_id = self._chat_id(params)
        sent = self._by_key.get((chat_id, _int(params, "message_id") or 0))
        if sent is None or sent.deleted:
            raise bad_request(missing)
        return sent

    def _reply_to(self, chat_id: int, params: dict[str, Any]) -> int | None:
        reply = params.get("reply_parameters")
        reply = reply if isinstance(reply, dict) else {}
        message_id = reply.get("message_id") or _int(params, "reply_to_message_id")
        if message_id is None:
            return None
        key = (chat_id, int(message_id))
        if key not in self._user_msgs and key not in self._by_key:
            if not reply.get("allow_sending_without_reply"):
                raise bad_request("message to be replied not found")
            return None
        return int(message_id)

    # ---- control API (for out-of-process drivers) --------------------------------------------
    async def _c_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        message_id = self.user_message(
            int(body["user_id"]),
            str(body["text"]),
            chat_id=body.get("chat_id"),
            first_name=body.get("first_name", "Test"),
            username=body.get("username"),
        )
        return web.json_response({"message_id": message_id})

    async def _c_edit(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.user_edit(
            int(body["user_id"]),
            int(body["message_id"]),
            body["text"],
            chat_id=body.get("chat_id"),
        )
        return web.json_response({"ok": True})

    async def _c_press(self, request: web.Request) -> web.Response:
        body = await request.json()
        query_id = self.press_button(
            int(body["user_id"]),
            int(body["message_id"]),
            str(body["callback_data"]),
            chat_id=body.get("chat_id"),
        )
        return web.json_response({"callback_query_id": query_id})

    async def _c_fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fail(
            body["method"],
            status=int(body.get("status", 500)),
            times=int(body.get("times", 1)),
            retry_after=body.get("retry_after"),
            description=body.get("description"),
        )
        return web.json_response({"ok": True})

    async def _c_slow(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.slow(body["method"], delay=float(body["delay"]), times=int(body.get("times", 1)))
        return web.json_response({"ok": True})

    async def _c_block(self, request: web.Request) -> web.Response:
        body = await request.json()
        (self.block if body.get("blocked", True) else self.unblock)(int(body["user_id"]))
        return web.json_response({"ok": True})

    async def _c_sent(self, request: web.Request) -> web.Response:
        raw = request.query.get("chat_id")
        rows = []
        for msg in self.sent(int(raw) if raw else None):
            row = dataclasses.asdict(msg)
            row["document"] = None
            row["document_size"] = None if msg.document is None else len(msg.document)
            rows.append(row)
        return web.json_response(rows)

    async def _c_state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "confirmed_offset": self.confirmed_offset,
                "pending_updates": self.pending_updates(),
                "calls": len(self.calls),
                "sent": len(self.sent()),
                "callback_answers": len(self.callback_answers),
            }
        )


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


def _loggable(value: Any) -> Any:
    if isinstance(value, Upload):
        return {"file_name": value.file_name, "size": len(value.data)}
    return value


def _scope_key(params: dict[str, Any]) -> str:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)
