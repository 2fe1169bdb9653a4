"""The JSON file /export writes, read for /import: every item validated before anything is
written (a pydantic TypeAdapter for its shape), so a hostile or broken file is refused whole,
naming the item at fault: too deep, a number too long, a date out of range, a lone surrogate.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr, TypeAdapter, ValidationError

from engine.errors import InvalidInput, MemoryBotError
from engine.memory import normalise_text

MAX_TAGS = 20
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)  # dates of an export outside this are not real
LATEST = datetime(2999, 12, 31, tzinfo=UTC)


class BadImport(InvalidInput):
    """The file cannot be imported; the message says why (and where)."""


@dataclass(frozen=True)
class ImportItem:
    """One memory to import: its text, and what the export said about it."""

    text: str
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    expires_at: datetime | None = None


def json_items(text: str, limit: int) -> list[ImportItem]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadImport(
            f"That file is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg})."
        ) from None
    except ValueError:  # an integer of more digits than Python reads (4,300)
        raise BadImport(
            "That file holds a number too long to read; it is not an export."
        ) from None
    except RecursionError:
        raise BadImport(
            "That file nests lists or objects too deeply; it is not an export."
        ) from None
    if isinstance(document, dict) and isinstance(document.get("memories"), list):
        entries: list[Any] = document["memories"]
    elif isinstance(document, list):
        entries = document
    else:
        raise BadImport(
            'That JSON is not an export: I expect {"memories": [{"text": "..."}, ...]}.'
        )
    try:
        parsed = _ENTRIES.validate_python(entries)
    except ValidationError as error:
        raise BadImport(_describe(error.errors())) from None
    return [_json_item(entry, number, limit) for number, entry in enumerate(parsed, 1)]


class _Entry(BaseModel):
    """One memory of an export file, as /export writes it (other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    text: StrictStr
    tags: list[StrictStr] | None = None
    created_at: StrictStr | None = None
    expires_at: StrictStr | None = None


_ENTRIES = TypeAdapter(list[StrictStr | _Entry])
_FIELDS = ("tags", "created_at", "expires_at")


def _describe(errors: list[Any]) -> str:
    """A refusal naming the item (and the field) of pydantic's first error (an object's own
    error rather than the one saying it is no string)."""
    error = next((e for e in errors if "_Entry" in e["loc"]), errors[0])
    where = f"Memory {int(error['loc'][0]) + 1} in the file"
    field = next((part for part in error["loc"] if part in _FIELDS), None)
    if field == "tags":
        return f'{where}: "tags" must be a list of words.'
    if field is not None:
        return f'{where}: "{field}" is not a date and time ({str(error["input"])[:40]!r}).'
    return f'{where} has no "text" string.'


def _json_item(entry: str | _Entry, number: int, limit: int) -> ImportItem:
    where = f"Memory {number} in the file"
    if isinstance(entry, str):
        entry = _Entry(text=entry)
    tags = entry.tags or []
    return ImportItem(
        text=clean_text(entry.text, where, limit),
        tags=tuple(dict.fromkeys(t.strip().lstrip("#").lower() for t in tags if t.strip()))[
            :MAX_TAGS
        ],
        created_at=_timestamp(entry.created_at, where, "created_at"),
        expires_at=_timestamp(entry.expires_at, where, "expires_at"),
    )


def _timestamp(value: str | None, where: str, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadImport(f'{where}: "{name}" is not a date and time ({value[:40]!r}).') from None
    with contextlib.suppress(OverflowError):  # 0001-01-01T00:00+01:00 has no UTC instant
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if not EARLIEST <= when.replace(tzinfo=UTC) <= LATEST:
        raise BadImport(
            f'{where}: "{name}" ({value[:40]}) is not between {EARLIEST:%Y} and {LATEST:%Y}.'
        )
    return when


def clean_text(text: str, where: str, limit: int) -> str:
    try:
        return normalise_text(text, limit=limit)
    except MemoryBotError as error:
        raise BadImport(f"{where}: {error}") from None
