"""Pure helpers of the Bot API emulator: errors, sent-message records, Telegram text parsing."""

from __future__ import annotations

import asyncio
import html
import mimetypes
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 4096
MAX_CAPTION = 1024

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG_RE = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[A-Za-z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)"
    r"\s*/?>"
)
_ATTR_RE = re.compile(r"([A-Za-z-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")
_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9A-Fa-f]+);")
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?=\s|$)")
_MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MD2_MARKUP = set("_*[]()~`|")
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


class ApiError(Exception):
    """A Bot API error answer: HTTP status, description and optional retry_after."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram would answer with."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(what: str) -> ApiError:
    """A 400 error with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {what}")


def fault_error(status: int, retry_after: int | None, description: str | None) -> ApiError:
    """The error an injected fault answers with (Telegram's usual wording per status)."""
    if status == 429:
        retry_after = 1 if retry_after is None else retry_after
    default = {
        400: "Bad Request: chat not found",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict: terminated by other getUpdates request",
        429: f"Too Many Requests: retry after {retry_after}",
        502: "Bad Gateway",
    }.get(status, "Internal Server Error")
    return ApiError(status, description or default, retry_after if status == 429 else None)


@dataclass
class SentMessage:
    """A message the bot sent, in its current state (after edits)."""

    chat_id: int
    message_id: int
    text: str | None
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    document: bytes | None = None
    file_name: str | None = None
    caption: str | None = None
    edits: int = 0
    date: int = 0
    plain: str | None = None  # visible text (or caption) after entity parsing
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_to: int | None = None
    deleted: bool = False
    file_id: str | None = None
    edit_date: int | None = None


@dataclass
class Upload:
    """A file part of a multipart request."""

    file_name: str
    data: bytes
    mime_type: str


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[dict[str, Any]]:
    """A bot_command entity at offset 0 when the text starts with a command, as Telegram does."""
    match = _COMMAND_RE.match(text)
    if match is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group())}]


def _entity(name: str, offset: int, end: int, attrs: dict[str, str]) -> dict[str, Any] | None:
    kind = _HTML_TAGS[name]
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": end - offset}
    if kind == "text_link":
        if not attrs.get("href"):
            return None
        entity["url"] = attrs["href"]
    elif kind == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif kind == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    return entity


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML into (visible text, entities); ValueError on malformed markup."""
    out: list[str] = []
    pos = 0
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "<":
            at = len(text[:i].encode())
            match = _TAG_RE.match(text, i)
            if match is None:
                raise ValueError(f"Unexpected end of name token at byte offset {at}")
            closing, name, raw_attrs = match.group(1), match.group(2).lower(), match.group(3)
            if name not in _HTML_TAGS:
                kind = "end" if closing else "start"
                raise ValueError(f'Unsupported {kind} tag "{name}" at byte offset {at}')
            if closing:
                if not stack or stack[-1][0] != name:
                    expected = f'"</{stack[-1][0]}>"' if stack else "no end tag"
                    raise ValueError(
                        f"Unmatched end tag at byte offset {at}, "
                        f'expected {expected}, found "</{name}>"'
                    )
                _, start, attrs = stack.pop()
                language = attrs.get("class", "").removeprefix("language-")
                if name == "code" and stack and stack[-1][0] == "pre" and language:
                    stack[-1][2]["language"] = language
                elif pos > start and (entity := _entity(name, start, pos, attrs)) is not None:
                    entities.append(entity)
            else:
                attrs = {
                    k.lower(): html.unescape(v.strip("\"'"))
                    for k, v in _ATTR_RE.findall(raw_attrs)
                }
                if name == "span" and attrs.get("class") != "tg-spoiler":
                    raise ValueError('Tag "span" must have class "tg-spoiler"')
                stack.append((name, pos, attrs))
            i = match.end()
            continue
        if char == "&" and (match := _ENTITY_RE.match(text, i)) is not None:
            char = html.unescape(match.group())
            i = match.end()
        else:
            i += 1
        out.append(char)
        pos += utf16_len(char)
    if stack:
        raise ValueError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def parse_markdown_v2(text: str) -> str:
    """Check MarkdownV2 escaping (reserved characters) and return the approximate visible text."""
    out: list[str] = []
    in_code = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == "`":
            in_code = not in_code
        elif in_code:
            out.append(char)
        elif char in _MD2_RESERVED and char not in _MD2_MARKUP:
            if not (char == ">" and (i == 0 or text[i - 1] == "\n")):
                raise ValueError(
                    f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
                )
        elif char not in _MD2_MARKUP:
            out.append(char)
        i += 1
    return "".join(out)


def format_text(
    text: str, parse_mode: str | None, entities: Any, *, limit: int, what: str = "text"
) -> tuple[str, list[dict[str, Any]]]:
    """Validate a text/caption like Telegram: returns (visible text, entities) or raises 400."""
    mode = (parse_mode or "").lower()
    try:
        if mode == "html":
            visible, found = parse_html(text)
        elif mode == "markdownv2":
            visible, found = parse_markdown_v2(text), []
        else:
            visible, found = text, entities if isinstance(entities, list) else []
    except ValueError as exc:
        raise bad_request(f"can't parse entities: {exc}") from None
    if what == "text" and not visible.strip():
        raise bad_request("message text is empty")
    if len(visible) > limit:
        raise bad_request(
            "message is too long" if what == "text" else "message caption is too long"
        )
    return visible, found


def check_markup(markup: Any) -> dict[str, Any] | None:
    """Validate a reply_markup object like Telegram does for the common mistakes."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad_request("can't parse inline keyboard button: Text must be non-empty")
            if not any(key in button for key in _BUTTON_ACTIONS):
                raise bad_request(
                    "can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")
    return markup


def button_data(markup: dict[str, Any] | None) -> list[str]:
    """All callback_data values of an inline keyboard."""
    rows = (markup or {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


class Signal:
    """Wake every waiter when something changed (safe to fire from any thread)."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def fire(self) -> None:
        """Wake all current waiters."""
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            fut.get_loop().call_soon_threadsafe(_resolve, fut)

    async def wait(self, seconds: float) -> None:
        """Wait until fired or `seconds` passed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait({fut}, timeout=max(seconds, 0.0))
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _user_dict(user_id: int, first_name: str, username: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        user["username"] = username
    user["language_code"] = "en"
    return user


class EmulatorState:
    """In-process side of the emulator: update queue, message store, faults, observations."""

    def __init__(self, token: str, bot_username: str) -> None:
        self.token = token
        self.bot_username = bot_username
        prefix = token.split(":", 1)[0]
        self.bot_user: dict[str, Any] = {
            "id": int(prefix) if prefix.isdigit() else 123456,
            "is_bot": True,
            "first_name": "MemoryBot Test",
            "username": bot_username,
        }
        self.calls: list[tuple[float, str, dict[str, Any]]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.confirmed_offset = 0
        self.updates_signal = Signal()
        self.sent_signal = Signal()
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._next_ids: dict[int, int] = {}
        self._user_msgs: dict[tuple[int, int], dict[str, Any]] = {}
        self._sent: list[SentMessage] = []
        self._by_key: dict[tuple[int, int], SentMessage] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._files: dict[str, Upload] = {}
        self._callbacks: set[str] = set()
        self._faults: dict[str, list[list[Any]]] = {}
        self._delays: dict[str, list[list[float]]] = {}
        self._blocked: set[int] = set()
        self._send_seconds: Counter[int] = Counter()
        self._t0 = time.monotonic()

    # ---- injecting user activity -------------------------------------------------------------
    def user_message(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        first_name: str = "Test",
        username: str | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> int:
        """Queue a text message from a user; returns its message_id."""
        found = command_entities(text) if entities is None else entities
        extra: dict[str, Any] = {"text": text, **({"entities": found} if found else {})}
        return self._user_update(user_id, chat_id, extra, first_name, username)

    def user_photo(
        self, user_id: int, caption: str | None = None, *, chat_id: int | None = None
    ) -> int:
        """Queue a photo message (three sizes, optional caption)."""
        sizes = []
        for side in (90, 320, 1280):
            ref = self.store_file(
                Upload(f"photo_{side}.jpg", b"\xff\xd8\xff" * side, "image/jpeg")
            )
            sizes.append({**ref, "width": side, "height": side * 3 // 4})
        return self._user_update(user_id, chat_id, {"photo": sizes, **_caption(caption)})

    def user_document(
        self,
        user_id: int,
        file_name: str,
        caption: str | None = None,
        *,
        content: bytes = b"hello\n",
        chat_id: int | None = None,
    ) -> int:
        """Queue a document message; its bytes can be fetched with getFile + the file URL."""
        mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        ref = self.store_file(Upload(file_name, content, mime))
        document = {**ref, "file_name": file_name, "mime_type": mime}
        return self._user_update(user_id, chat_id, {"document": document, **_caption(caption)})

    def user_sticker(self, user_id: int, *, chat_id: int | None = None) -> int:
        """Queue a sticker message."""
        ref = self.store_file(Upload("sticker.webp", b"RIFF....WEBP", "image/webp"))
        sticker = {**ref, "type": "regular", "width": 512, "height": 512, "emoji": "👍"}
        sticker |= {"is_animated": False, "is_video": False}
        return self._user_update(user_id, chat_id, {"sticker": sticker})

    def user_edit(
        self, user_id: int, message_id: int, new_text: str, *, chat_id: int | None = None
    ) -> None:
        """Queue an edited_message update for an earlier user text message."""
        chat = user_id if chat_id is None else chat_id
        original = self._user_msgs.get((chat, message_id))
        if original is None:
            raise KeyError(f"no user message {message_id} in chat {chat}")
        edited = {k: v for k, v in original.items() if k != "entities"}
        edited |= {"text": new_text, "edit_date": int(time.time())}
        if found := command_entities(new_text):
            edited["entities"] = found
        self._user_msgs[(chat, message_id)] = edited
        self._queue({"edited_message": edited})

    def press_button(
        self,
        user_id: int,
        message_id: int,
        callback_data: str,
        *,
        chat_id: int | None = None,
        strict: bool = True,
    ) -> str:
        """Queue a callback_query on a bot message; strict: the button must be on it now."""
        chat = user_id if chat_id is None else chat_id
        sent = self._by_key.get((chat, message_id))
        if sent is None or sent.deleted:
            raise KeyError(f"the bot has no message {message_id} in chat {chat}")
        if strict and callback_data not in (buttons := button_data(sent.reply_markup)):
            raise ValueError(f"no button {callback_data!r} on message {message_id}: {buttons}")
        query_id = str(4_000_000_000_000 + len(self._callbacks) + 1)
        self._callbacks.add(query_id)
        self._queue(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self._chat_user(user_id),
                    "message": self.bot_message(sent),
                    "chat_instance": str(abs(chat) * 31 + 7),
                    "data": callback_data,
                }
            }
        )
        return query_id

    def raw_update(self, update: dict[str, Any]) -> int:
        """Queue any JSON as an update (update_id assigned if missing); returns the update_id."""
        return self._queue(dict(update))

    # ---- observing ---------------------------------------------------------------------------
    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        """Bot messages in send order (current state), optionally for one chat."""
        return [m for m in self._sent if chat_id is None or m.chat_id == chat_id]

    async def wait_for(
        self,
        predicate: Callable[[list[SentMessage]], bool] | None = None,
        *,
        chat_id: int | None = None,
        count: int | None = None,
        timeout: float = 15.0,  # noqa: ASYNC109
    ) -> list[SentMessage]:
        """Wait until sent(chat_id) has >= count messages (default 1) and predicate holds."""
        need = 1 if count is None and predicate is None else count or 0
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.sent(chat_id)
            if len(msgs) >= need and (predicate is None or predicate(msgs)):
                return msgs
            left = deadline - time.monotonic()
            if left <= 0:
                shown = "\n".join(
                    f"  chat {m.chat_id} #{m.message_id}: {m.text or m.caption!r}"[:200]
                    for m in msgs[-10:]
                )
                recent = ", ".join(method for _, method, _ in self.calls[-15:])
                raise TimeoutError(
                    f"wait_for timed out after {timeout}s (chat_id={chat_id}, count={count}); "
                    f"{len(msgs)} sent:\n{shown or '  (nothing)'}\nlast calls: {recent}"
                )
            await self.sent_signal.wait(min(left, 0.5))

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed."""
        return len(self._updates)

    def sends_per_second(self) -> dict[int, int]:
        """Successful sendMessage calls per whole second since the emulator was created."""
        return dict(sorted(self._send_seconds.items()))

    # ---- faults ------------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        *,
        status: int = 500,
        times: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` ("*" = any) fail; retry_after implies 429."""
        if retry_after is not None and status == 500:
            status = 429
        self._faults.setdefault(method.lower(), []).append(
            [status, retry_after, description, times]
        )

    def slow(self, method: str, *, delay: float, times: int = 1) -> None:
        """Make the next `times` calls of `method` sleep `delay` seconds before being handled."""
        self._delays.setdefault(method.lower(), []).append([delay, times])

    def block(self, user_id: int) -> None:
        """Every send to this chat answers 403 until unblock()."""
        self._blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        """Undo block()."""
        self._blocked.discard(user_id)

    def take_fault(self, method: str) -> ApiError | None:
        """Consume the next injected fault for `method`, if any."""
        for key in (method.lower(), "*"):
            queue = self._faults.get(key)
            if queue:
                status, retry_after, description, _ = queue[0]
                queue[0][3] -= 1
                if queue[0][3] <= 0:
                    queue.pop(0)
                return fault_error(status, retry_after, description)
        return None

    def take_delay(self, method: str) -> float:
        """Consume the next injected delay for `method` (0 if none)."""
        for key in (method.lower(), "*"):
            queue = self._delays.get(key)
            if queue:
                delay = queue[0][0]
                queue[0][1] -= 1
                if queue[0][1] <= 0:
                    queue.pop(0)
                return delay
        return 0.0

    # ---- internals shared with the HTTP side -------------------------------------------------
    def check_chat(self, chat_id: int) -> None:
        """Raise 403 if the chat is blocked."""
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def next_message_id(self, chat_id: int) -> int:
        """Message ids are per chat and shared between user and bot messages."""
        self._next_ids[chat_id] = self._next_ids.get(chat_id, 0) + 1
        return self._next_ids[chat_id]

    def chat(self, chat_id: int) -> dict[str, Any]:
        """The Chat object for a chat id (a private chat if never seen)."""
        return self._chats.get(chat_id) or {"id": chat_id, "type": "private", "first_name": "Test"}

    def store_file(self, upload: Upload) -> dict[str, Any]:
        """Remember file bytes; returns file_id/file_unique_id/file_size."""
        n = len(self._files) + 1
        file_id = f"FILE{n:06d}{upload.file_name.encode().hex()[:12]}"
        self._files[file_id] = upload
        return {"file_id": file_id, "file_unique_id": f"U{n:06d}", "file_size": len(upload.data)}

    def record_sent(self, message: SentMessage) -> None:
        """Store a new bot message and wake wait_for()."""
        self._sent.append(message)
        self._by_key[(message.chat_id, message.message_id)] = message
        if message.document is None and message.text is not None:
            self._send_seconds[int(time.monotonic() - self._t0)] += 1
        self.sent_signal.fire()

    def bot_message(self, sent: SentMessage) -> dict[str, Any]:
        """The Message object Telegram returns for a bot message."""
        msg: dict[str, Any] = {
            "message_id": sent.message_id,
            "from": self.bot_user,
            "chat": self.chat(sent.chat_id),
            "date": sent.date,
        }
        key = "text" if sent.document is None else "caption"
        if sent.document is not None and sent.file_id is not None:
            upload = self._files[sent.file_id]
            msg["document"] = {
                "file_id": sent.file_id,
                "file_unique_id": f"U{sent.file_id[4:10]}",
                "file_name": upload.file_name,
                "mime_type": upload.mime_type,
                "file_size": len(upload.data),
            }
        if sent.plain is not None:
            msg[key] = sent.plain
        if sent.entities:
            msg["entities" if key == "text" else "caption_entities"] = sent.entities
        if sent.reply_markup:
            msg["reply_markup"] = sent.reply_markup
        if sent.edit_date is not None:
            msg["edit_date"] = sent.edit_date
        if sent.reply_to is not None and (sent.chat_id, sent.reply_to) in self._user_msgs:
            msg["reply_to_message"] = self._user_msgs[(sent.chat_id, sent.reply_to)]
        return msg

    def _chat_user(self, user_id: int) -> dict[str, Any]:
        return self._users.get(user_id) or _user_dict(user_id, "Test", None)

    def _user_update(
        self,
        user_id: int,
        chat_id: int | None,
        content: dict[str, Any],
        first_name: str = "Test",
        username: str | None = None,
    ) -> int:
        chat_id = user_id if chat_id is None else chat_id
        user = _user_dict(user_id, first_name, username)
        self._users[user_id] = user
        if chat_id == user_id:
            chat = {"id": chat_id, "type": "private", "first_name": first_name}
            chat |= {"username": username} if username else {}
        else:
            kind = "supergroup" if chat_id < -(10**12) else "group"
            chat = {"id": chat_id, "type": kind, "title": f"Test group {chat_id}"}
        self._chats[chat_id] = chat
        message_id = self.next_message_id(chat_id)
        message = {"message_id": message_id, "from": user, "chat": chat, "date": int(time.time())}
        message |= content
        self._user_msgs[(chat_id, message_id)] = message
        self._queue({"message": message})
        return message_id

    def _queue(self, update: dict[str, Any]) -> int:
        if not isinstance(update.get("update_id"), int):
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"])) + 1
        self._updates.append(update)
        self.updates_signal.fire()
        return int(update["update_id"])


def _caption(caption: str | None) -> dict[str, Any]:
    if caption is None:
        return {}
    found = command_entities(caption)
    return {"caption": caption, **({"caption_entities": found} if found else {})}
