"""Filtered /list and /recall: the query split in the user's time zone, the memo that lets
paging buttons keep the filter, and the reply text that names the filter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from bot.replies import esc, memory_line, preview
from engine.clock import utcnow
from engine.memory import Memory
from engine.memory_reads import RecallHit
from engine.query_filter import FilteredQuery, split_query
from engine.users import UserService

FILTER_MARK = "🔎"  # a filtered /list starts with it (its buttons then need the memo)


@dataclass(frozen=True)
class Asked:
    """A query as typed, with the moment and time zone it is read in (so paging repeats it)."""

    raw: str
    now: datetime
    timezone: str | None

    def parsed(self) -> FilteredQuery:
        """The query split into text and filter (raises BadTimeRange)."""
        return split_query(self.raw, now=self.now, timezone=self.timezone)

    def encode(self) -> str:
        """The memo form; a query without a filter stays plain text (as older memos are)."""
        if self.parsed().wanted.empty:
            return self.raw
        return json.dumps({"q": self.raw, "now": self.now.isoformat(), "tz": self.timezone})

    @classmethod
    def decode(cls, memo: str) -> Asked:
        """Read a memo back (plain text: a query without a filter)."""
        try:
            data = json.loads(memo)
            return cls(str(data["q"]), datetime.fromisoformat(data["now"]), data.get("tz"))
        except (ValueError, TypeError, KeyError):
            return cls(memo, utcnow(), None)


async def asked(users: UserService, user_id: int, raw: str, *, anonymous: bool) -> Asked:
    """`raw` read now; the asker's time zone is looked up only when it names a time."""
    now = utcnow()
    plain = Asked(raw, now, None)
    if anonymous or plain.parsed().period is None:
        return plain
    user = await users.get(user_id=user_id)
    return Asked(raw, now, user.timezone if user else None)


def recall_hits_text(parsed: FilteredQuery, hits: list[RecallHit], start: int) -> str:
    """One page of a filtered recall, headed by the query and the filter it used."""
    question = esc(preview(parsed.text))
    if not hits:
        return (
            f"{FILTER_MARK} Nothing found for <i>{question}</i> with {esc(parsed.described)}.\n"
            f"Try without the filter: /recall {question}"
        )
    lines = [f"{FILTER_MARK} <b>{question}</b> · {esc(parsed.described)}"]
    for number, hit in enumerate(hits, start=start + 1):
        score = f" · {hit.similarity:.0%} match" if hit.similarity is not None else " · keyword"
        lines.append(memory_line(number, hit.memory) + score)
    return "\n".join(lines)


def filtered_list_text(
    parsed: FilteredQuery, items: list[Memory], offset: int, total: int, command: str
) -> str:
    """One page of the memories a filter keeps (for /list, or /recall with only a filter)."""
    described = esc(parsed.described)
    if not items:
        return (
            f"{FILTER_MARK} No memories with {described}.\n"
            f"Try without the filter: /list shows all of them, /tags the tags in use."
        )
    header = f"{FILTER_MARK} {described}: {offset + 1}–{offset + len(items)} of {total}"
    if command == "recall":
        header = f"{FILTER_MARK} {described}: {total} memor{'y' if total == 1 else 'ies'}"
    return "\n".join([header, *(memory_line(offset + i + 1, m) for i, m in enumerate(items))])


def tags_text(counts: list[tuple[str, int]], *, group: bool) -> str:
    """The /tags reply: every tag of the space with how many memories carry it."""
    if not counts:
        whose = "This group's memories have" if group else "Your memories have"
        return (
            f"{whose} no #tags yet. Put one in any memory, e.g. "
            "<code>/save call the bank #work</code>, then /list <code>#work</code>."
        )
    whose = "This group's tags" if group else "Your tags"
    lines = [f"🏷 {whose} ({len(counts)}):"]
    lines += [f"#{esc(tag)} · {count}" for tag, count in counts]
    lines.append("\nShow one with /list <code>#tag</code>; search in one with /recall #tag words.")
    return "\n".join(lines)
