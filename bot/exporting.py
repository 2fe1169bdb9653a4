"""/export files: JSON written memory by memory into parts below Telegram's upload limit."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from engine.memory import Memory, is_personal

UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024  # Telegram's limit for files a bot uploads
PART_LIMIT_BYTES = 45 * 1024 * 1024  # one part at most: room left for the multipart envelope
SPOOL_BYTES = 1024 * 1024  # a part larger than this is written to a temporary file on disk


@dataclass
class ExportPart:
    """One JSON document of an export: a complete file with some of the memories."""

    number: int
    file: IO[bytes]
    count: int

    def close(self) -> None:
        """Drop the file (it may be a temporary file on disk)."""
        self.file.close()


def memory_entry(memory: Memory) -> dict[str, Any]:
    """What an export says about one memory."""
    return {
        "id": str(memory.id),
        "text": memory.text,
        "tags": list(memory.tags),
        "author_id": memory.author_id,
        "topic_id": memory.topic_id,
        "created_at": memory.created_at.isoformat(),
        "updated_at": memory.updated_at.isoformat(),
        "expires_at": memory.expires_at.isoformat() if memory.expires_at else None,
    }


class PartWriter:
    """Writes one part: a header, one memory per line, then the footer with the count."""

    def __init__(self, number: int, head: dict[str, Any]) -> None:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (part.close)
        self.part = ExportPart(number, spool, 0)
        fields = json.dumps({**head, "part": number}, ensure_ascii=False)[1:-1]
        self.size = self._write(f'{{{fields}, "memories": [\n'.encode())

    def fits(self, entry: bytes, limit: int) -> bool:
        """True if `entry` still fits (a part always takes at least one memory)."""
        return self.part.count == 0 or self.size + len(entry) + len(self._footer()) + 2 <= limit

    def add(self, entry: bytes) -> None:
        """Append one memory's line."""
        self.size += self._write((b",\n" if self.part.count else b"") + entry)
        self.part.count += 1

    def finish(self) -> ExportPart:
        """Close the JSON document and rewind the file for sending."""
        self._write(self._footer())
        self.part.file.seek(0)
        return self.part

    def _footer(self) -> bytes:
        return f'\n], "count": {self.part.count}}}\n'.encode()

    def _write(self, data: bytes) -> int:
        self.part.file.write(data)
        return len(data)


def export_parts(
    memories: Iterable[Memory], *, space_id: int, now: datetime, limit: int | None = None
) -> list[ExportPart]:
    """The export of one space as JSON documents of at most `limit` bytes each.

    Args:
        limit: bytes per part (default PART_LIMIT_BYTES, read at call time).
    """
    size = PART_LIMIT_BYTES if limit is None else limit
    head: dict[str, Any] = {"exported_at": now.isoformat(), "space_id": space_id}
    if is_personal(space_id):
        head["user_id"] = space_id
    parts: list[ExportPart] = []
    writer = PartWriter(1, head)
    for entry in _entries(memories):
        if not writer.fits(entry, size):
            parts.append(writer.finish())
            writer = PartWriter(len(parts) + 1, head)
        writer.add(entry)
    parts.append(writer.finish())
    return parts


def _entries(memories: Iterable[Memory]) -> Iterator[bytes]:
    for memory in memories:
        yield json.dumps(memory_entry(memory), ensure_ascii=False).encode()


def part_name(now: datetime, part: ExportPart, total: int) -> str:
    """memorybot-export-YYYYMMDD.json, or …-partN.json when the export is split."""
    suffix = f"-part{part.number}" if total > 1 else ""
    return f"memorybot-export-{now:%Y%m%d}{suffix}.json"


def part_caption(part: ExportPart, total: int) -> str:
    """The caption under one file: how many memories, and which part."""
    noun = "memory" if part.count == 1 else "memories"
    which = f" · part {part.number} of {total}" if total > 1 else ""
    return f"{part.count} {noun}{which}"
