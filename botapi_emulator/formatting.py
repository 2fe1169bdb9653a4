"""Telegram text parsing: UTF-16 lengths, command entities, HTML and MarkdownV2 validation."""

from __future__ import annotations

import html
import re
from typing import Any

from botapi_emulator.errors import bad_request

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
