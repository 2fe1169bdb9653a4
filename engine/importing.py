"""Reading an /import file: the JSON that /export writes, or text with one memory per paragraph.

Pure functions: the whole file is parsed and validated before anything is written, so a bad
file is refused as a whole with a reason that names the item (or line) at fault.
"""

from __future__ import annotations

import re

from engine.import_json import BadImport, ImportItem, clean_text, json_items

MAX_IMPORT_BYTES = 2 * 1024 * 1024  # a bigger file is refused before it is downloaded
MAX_IMPORT_ITEMS = 5000
TEXT_SUFFIXES = (".txt", ".md")
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


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
        items = json_items(text, limit)
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
            items.append(ImportItem(text=clean_text(chunk, where, limit)))
        if match is not None:
            line += text.count("\n", cursor, match.end())
            cursor = match.end()
    return items
