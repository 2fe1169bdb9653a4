"""Reading an /import file: the JSON that /export writes, or text with one memory per paragraph.

Pure functions: the whole file is parsed and validated before anything is written, so a bad
file is refused as a whole with a reason that names the item (or line) at fault.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.errors import InvalidInput, MemoryBotError
from engine.memory import normalise_text

MAX_IMPORT_BYTES = 2 * 1024 * 1024  # a bigger file is refused before it is downloaded
MAX_IMPORT_ITEMS = 5000
TEXT_SUFFIXES = (".txt", ".md")
MAX_TAGS = 20
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


class BadImport(InvalidInput):
    """The file cannot be imported; the message says why (and where)."""


@dataclass(frozen=True)
class ImportItem:
    """One memory to import: its text, and what the export said about it."""

    text: str
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    expires_at: datetime | None = None


def describe_size(size: int) -> str:
    """A file size for people: 512 bytes, 12 KB, 3.4 MB."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def check_size(size: int, *, max_bytes: int = MAX_IMPORT_BYTES) -> None:
    """Refuse a file over `max_bytes` (before downloading it)."""
    if size > max_bytes:
        raise BadImport(
            f"That file is {describe_size(size)}; I import files of up to "
            f"{describe_size(max_bytes)}. Split it into smaller files and send them one by one."
        )


def parse_import(
    data: bytes,
    *,
    file_name: str,
    limit: int,
    max_items: int = MAX_IMPORT_ITEMS,
    max_bytes: int = MAX_IMPORT_BYTES,
) -> list[ImportItem]:
    """The memories in an /import file, validated, each text once (repeats dropped).

    Args:
        data: the file's bytes (UTF-8).
        file_name: its name; `.json` is read as an /export file, `.txt`/`.md` as paragraphs.
        limit: the longest text allowed (`max_memory_chars`).
        max_items: the most memories one file may hold.
        max_bytes: the largest file accepted.

    Raises:
        BadImport: naming the problem and the item or line; nothing may be written then.
    """
    check_size(len(data), max_bytes=max_bytes)
    name = file_name.lower()
    text = _decode(data)
    if name.endswith(".json"):
        items = _json_items(text, limit)
    elif name.endswith(TEXT_SUFFIXES):
        items = _paragraph_items(text, limit)
    else:
        raise BadImport(
            "I import the .json file that /export sends, or a .txt or .md file with one "
            "memory per paragraph (separated by a blank line)."
        )
    if not items:
        raise BadImport("That file holds no memories.")
    if len(items) > max_items:
        raise BadImport(
            f"That file holds {len(items):,} memories; one import takes at most {max_items:,}. "
            "Split it into smaller files."
        )
    return unique(items)


def unique(items: list[ImportItem]) -> list[ImportItem]:
    """The items with each text once (the first one wins)."""
    seen: dict[str, ImportItem] = {}
    for item in items:
        seen.setdefault(item.text, item)
    return list(seen.values())


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise BadImport(
            f"That file is not UTF-8 text (a bad byte on line {line}). "
            "Save it as UTF-8 and send it again."
        ) from None


def _json_items(text: str, limit: int) -> list[ImportItem]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadImport(
            f"That file is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg})."
        ) from None
    if isinstance(document, dict) and isinstance(document.get("memories"), list):
        entries: list[Any] = document["memories"]
    elif isinstance(document, list):
        entries = document
    else:
        raise BadImport(
            'That JSON is not an export: I expect {"memories": [{"text": "..."}, ...]}.'
        )
    return [_json_item(entry, number, limit) for number, entry in enumerate(entries, 1)]


def _json_item(entry: Any, number: int, limit: int) -> ImportItem:
    where = f"Memory {number} in the file"
    if isinstance(entry, str):
        entry = {"text": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
        raise BadImport(f'{where} has no "text" string.')
    tags = entry.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise BadImport(f'{where}: "tags" must be a list of words.')
    return ImportItem(
        text=_clean(entry["text"], where, limit),
        tags=tuple(dict.fromkeys(t.strip().lstrip("#").lower() for t in tags if t.strip()))[
            :MAX_TAGS
        ],
        created_at=_timestamp(entry.get("created_at"), where, "created_at"),
        expires_at=_timestamp(entry.get("expires_at"), where, "expires_at"),
    )


def _timestamp(value: Any, where: str, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise BadImport(
            f'{where}: "{name}" is not a date and time ({str(value)[:40]!r}).'
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _paragraph_items(text: str, limit: int) -> list[ImportItem]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    items = []
    line = 1
    cursor = 0
    for match in [*PARAGRAPH_BREAK.finditer(text), None]:
        end = len(text) if match is None else match.start()
        chunk = text[cursor:end]
        if chunk.strip():
            first = line + len(chunk) - len(chunk.lstrip("\n"))
            where = f"The paragraph on line {first}"
            items.append(ImportItem(text=_clean(chunk, where, limit)))
        if match is not None:
            line += text.count("\n", cursor, match.end())
            cursor = match.end()
    return items


def _clean(text: str, where: str, limit: int) -> str:
    try:
        return normalise_text(text, limit=limit)
    except MemoryBotError as error:
        raise BadImport(f"{where}: {error}") from None
