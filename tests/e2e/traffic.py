"""Webhook traffic for several workers: a plan of updates, a load balancer, the replies.

The plan is built with the emulator (so it knows every chat, user and message) and then
taken out of its getUpdates queue: the test, acting as Telegram and a load balancer, POSTs
each update to a worker's /telegram itself. Each save's reply names the memory (`<code>id`),
each recall's reply starts with its query, whose first word is a per-update token: with the
memories' (chat_id, message_id) from SQL, every reply maps back to the update it answers.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from botapi_emulator import BotApiEmulator, SentMessage

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
NOUNS = ("passport", "umbrella", "charger", "invoice", "bicycle", "recipe", "ticket", "ring")
PLACES = ("blue drawer", "garage shelf", "red backpack", "office desk", "kitchen jar")
SAVED = re.compile(r"^✅ Saved <code>([0-9a-f]{8})</code>")
RECALLED = re.compile(r"^🔎 (?:<b>|Nothing found for <i>)(q\d+)\b")
GIVE_UP_S = 60.0  # an update nobody accepts for this long fails the run


@dataclass(frozen=True)
class Planned:
    """One update of the plan, in the order Telegram would send them."""

    index: int
    update: dict[str, Any]
    chat_id: int
    message_id: int
    kind: str  # save | plain | recall


def plan_traffic(
    emulator: BotApiEmulator,
    *,
    users: Sequence[int],
    groups: Mapping[int, Sequence[int]],
    per_user: int,
    per_group: int,
    seed: int = 12,
) -> list[Planned]:
    """Updates from `users` (private chats: /save, plain text, /recall) and `groups` (members
    /save and /recall), randomly interleaved as real traffic would be."""
    rng = random.Random(seed)
    emulator.group_send_limit = None
    for group, members in groups.items():
        emulator.create_group(group, title=f"group {group}", members=members)
    slots = [(u, u) for u in users for _ in range(per_user)]
    slots += [(g, m) for g, members in groups.items() for m in members for _ in range(per_group)]
    rng.shuffle(slots)
    kinds: list[str] = []
    for index, (chat, user) in enumerate(slots):
        roll = rng.random()
        noun, place = NOUNS[index % len(NOUNS)], PLACES[index % len(PLACES)]
        if roll < 0.2:
            kind, text = "recall", f"/recall q{index} where is the {noun}"
        elif roll < 0.55 and chat == user:
            kind, text = "plain", f"plain {index}: the {noun} is in the {place}"
        else:
            kind, text = "save", f"/save note {index}: the {noun} went to the {place}"
        kinds.append(kind)
        emulator.user_message(user, text, chat_id=None if chat == user else chat)
    queue = emulator.state.updates
    updates = queue.batch(None, len(slots) + 1)
    queue.clear()
    assert len(updates) == len(slots)
    return [
        Planned(i, u, int(u["message"]["chat"]["id"]), int(u["message"]["message_id"]), kinds[i])
        for i, u in enumerate(updates)
    ]


class Replies:
    """Every bot message the emulator records, with the monotonic time it arrived."""

    def __init__(self, emulator: BotApiEmulator) -> None:
        self.seen: list[tuple[float, SentMessage]] = []
        record = emulator.record_sent

        def recording(message: SentMessage) -> None:
            self.seen.append((time.monotonic(), message))
            record(message)

        emulator.record_sent = recording  # type: ignore[method-assign]


@dataclass
class Balancer:
    """POSTs updates to the workers like Telegram behind a load balancer: a random worker
    first, the next one if it refuses or fails (connection error, timeout, 5xx), until one
    answers 200. A chat's updates go one after another (the next once the previous is
    accepted); different chats go in parallel."""

    urls: list[str]
    secret: str
    seed: int = 7
    concurrency: int = 16
    first_post: dict[int, float] = field(default_factory=dict)
    accepted: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    async def run(self, plan: Sequence[Planned], *, rate: float | None = None) -> None:
        """Send the whole plan (`rate`: updates per second; None: as fast as accepted)."""
        rng = random.Random(self.seed)
        gate = asyncio.Semaphore(self.concurrency)
        timeout = aiohttp.ClientTimeout(total=10)
        last: dict[int, asyncio.Task[None]] = {}
        tasks: list[asyncio.Task[None]] = []
        async with aiohttp.ClientSession(timeout=timeout) as http:
            begin = time.monotonic()
            for item in plan:
                if rate:
                    await asyncio.sleep(max(0.0, begin + item.index / rate - time.monotonic()))
                order = rng.sample(range(len(self.urls)), len(self.urls))
                before = last.get(item.chat_id)
                task = asyncio.create_task(self._send(http, gate, item, order, before))
                last[item.chat_id] = task
                tasks.append(task)
            await asyncio.gather(*tasks)

    async def _send(
        self,
        http: aiohttp.ClientSession,
        gate: asyncio.Semaphore,
        item: Planned,
        order: list[int],
        before: asyncio.Task[None] | None,
    ) -> None:
        if before is not None:
            await before
        headers = {SECRET_HEADER: self.secret}
        deadline = time.monotonic() + GIVE_UP_S
        async with gate:
            self.first_post[item.index] = time.monotonic()
            for attempt in range(10_000):
                target = order[attempt % len(order)]
                try:
                    async with http.post(
                        self.urls[target], json=item.update, headers=headers
                    ) as answer:
                        status = answer.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                self.outcomes[f"worker{target}:{status or 'down'}"] += 1
                if status == 200:
                    self.accepted += 1
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no worker accepted update {item.index}")
                if attempt % len(order) == len(order) - 1:
                    await asyncio.sleep(0.2)  # every worker refused: wait a little
        raise RuntimeError(f"no worker accepted update {item.index}")


async def sql(database_url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """Rows of one query, straight from PostgreSQL (whoever else is running)."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def pending_updates(database_url: str) -> int:
    """Updates stored in the inbox and not finished."""
    rows = await sql(database_url, "SELECT count(*) FROM inbox WHERE status = 'pending'")
    return int(rows[0][0])


async def memory_sources(database_url: str) -> dict[str, list[tuple[int, int]]]:
    """(chat_id, message_id) of every memory, by short id."""
    rows = await sql(database_url, "SELECT id, chat_id, message_id FROM memories")
    found: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        found.setdefault(row["id"].hex[:8], []).append((row["chat_id"], row["message_id"]))
    return found


def answered(
    plan: Sequence[Planned],
    replies: Replies,
    sources: dict[str, list[tuple[int, int]]],
) -> tuple[dict[int, list[tuple[int, float]]], list[SentMessage]]:
    """Each chat's replies as (plan index, time) in send order, and the replies that answer
    no planned update."""
    by_source = {(p.chat_id, p.message_id): p.index for p in plan}
    by_token = {f"q{p.index}": p.index for p in plan if p.kind == "recall"}
    chats: dict[int, list[tuple[int, float]]] = {p.chat_id: [] for p in plan}
    stray: list[SentMessage] = []
    for at, message in replies.seen:
        text = message.text or ""
        index: int | None = None
        if saved := SAVED.match(text):
            places = sources.get(saved.group(1), [])
            index = by_source.get(places[0]) if len(places) == 1 else None
        elif recalled := RECALLED.match(text):
            index = by_token.get(recalled.group(1))
        if index is None or plan[index].chat_id != message.chat_id:
            stray.append(message)
            continue
        chats[message.chat_id].append((index, at))
    return chats, stray


async def drained(database_url: str, plan: Sequence[Planned], replies: Replies) -> bool:
    """True once the inbox holds nothing pending and every planned update was answered."""
    if await pending_updates(database_url):
        return False
    chats, _ = answered(plan, replies, await memory_sources(database_url))
    return sum(len({index for index, _ in got}) for got in chats.values()) == len(plan)
