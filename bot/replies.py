"""Reply text: HTML with every user string escaped, split below Telegram's 4,096 limit."""

from __future__ import annotations

from datetime import datetime
from html import escape

from engine.clock import utcnow
from engine.memory import Memory
from engine.memory_reads import RecallHit

TELEGRAM_LIMIT = 4096
SAFE_LIMIT = 4000
PREVIEW_CHARS = 300


def esc(text: str) -> str:
    """Escape a user string for HTML parse mode."""
    return escape(text, quote=False)


def split_message(text: str, limit: int = SAFE_LIMIT) -> list[str]:
    """Split on line boundaries into parts of at most `limit` characters.

    A single line longer than `limit` is cut at the limit, never inside an HTML entity.
    """
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            cut = limit
            amp = line.rfind("&", 0, cut)
            if amp != -1 and ";" not in line[amp:cut]:
                cut = amp  # do not split "&amp;"
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:cut])
            line = line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return [part for part in parts if part.strip()] or [text[:limit]]


def age(moment: datetime, now: datetime | None = None) -> str:
    """A short relative age: 'just now', '5m ago', '3h ago', '2d ago', '2025-01-31'."""
    seconds = ((now or utcnow()) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    if seconds < 30 * 86400:
        return f"{int(seconds // 86400)}d ago"
    return moment.strftime("%Y-%m-%d")


def preview(text: str) -> str:
    """`text` on one line, cut to PREVIEW_CHARS."""
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def memory_line(number: int, memory: Memory) -> str:
    """One numbered memory: its preview, then its short id, age, forum topic and expiry."""
    topic = f" · topic {memory.topic_id}" if memory.topic_id is not None else ""
    expiry = f" · ⏳ {memory.expires_at:%Y-%m-%d %H:%M}" if memory.expires_at else ""
    return (
        f"{number}. {esc(preview(memory.text))}\n"
        f"    <code>{memory.short_id}</code> · {age(memory.created_at)}{topic}{expiry}"
    )


def recall_text(query: str, hits: list[RecallHit], start: int) -> str:
    """One page of recall results for `query`, numbered from `start` + 1."""
    if not hits:
        return f"🔎 Nothing found for <i>{esc(preview(query))}</i>."
    lines = [f"🔎 <b>{esc(preview(query))}</b>"]
    for number, hit in enumerate(hits, start=start + 1):
        score = f" · {hit.similarity:.0%} match" if hit.similarity is not None else " · keyword"
        lines.append(memory_line(number, hit.memory) + score)
    return "\n".join(lines)


def list_text(items: list[Memory], offset: int, total: int, *, group: bool = False) -> str:
    """One page of /list (of a personal space, or a group's), numbered from `offset` + 1."""
    if not items:
        if group:
            return "This group has no memories yet. Save one with /save <i>text</i>."
        return "You have no memories yet. Send me any text to save it."
    whose = "This group's memories" if group else "Your memories"
    header = f"🧠 {whose} {offset + 1}–{offset + len(items)} of {total}"
    return "\n".join([header, *(memory_line(offset + i + 1, m) for i, m in enumerate(items))])
