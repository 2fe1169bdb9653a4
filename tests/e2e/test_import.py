"""/import end to end on both databases: export → import, idempotency, bad files, groups."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot.ledger import UpdateLedger
from botapi_emulator import BotApiEmulator, SentMessage
from engine.faults import Step
from engine.importing import MAX_IMPORT_BYTES
from engine.settings import Settings
from tests.e2e.conftest import BotUnderTest

A, B, C = 301, 302, 303
OWNER, MEMBER = 8_101, 8_102
GROUP = -1_000_000_810_001


@pytest.fixture
async def bot(settings: Settings, emulator: BotApiEmulator) -> AsyncIterator[BotUnderTest]:
    """The bot, with a group OWNER administers and MEMBER belongs to."""
    emulator.create_group(GROUP, title="book club", members=[MEMBER], creator=OWNER)
    under_test = BotUnderTest(settings, emulator)
    await under_test.start()
    yield under_test
    await under_test.stop()


async def send_file(
    bot: BotUnderTest,
    user: int,
    name: str,
    content: bytes,
    *,
    caption: str | None = "/import",
    chat_id: int | None = None,
    reply_to: int | None = None,
) -> SentMessage:
    """Send a document and return the bot's last message in that chat once all is done."""
    chat = chat_id or user
    before = len(bot.emulator.sent(chat))
    bot.emulator.user_document(
        user, name, caption, content=content, chat_id=chat_id, reply_to=reply_to
    )
    await bot.emulator.wait_for(chat_id=chat, count=before + 1)
    await bot.settled()
    return bot.emulator.sent(chat)[-1]


async def texts(bot: BotUnderTest, space: int) -> list[str]:
    page = await bot.engine.reads.page(space_id=space, limit=10_000)
    return sorted(m.text for m in page.items)


async def test_export_then_import_into_another_user_gives_the_same_memories(
    bot: BotUnderTest,
) -> None:
    notes = ["the spare key is under the blue pot", "dentist on friday at 9", "wifi: hunter2"]
    for note in notes:
        await bot.say(A, note)
    [doc] = await bot.say(A, "/export")
    assert doc.document is not None
    done = await send_file(bot, B, doc.file_name or "export.json", doc.document)
    assert "added 3 new memories, 0 were already here" in (done.text or "")
    assert await texts(bot, B) == sorted(notes)
    exported = {m["text"]: m["created_at"] for m in json.loads(doc.document)["memories"]}
    for memory in (await bot.engine.reads.page(space_id=B)).items:
        assert memory.created_at.isoformat() == exported[memory.text]  # the time is kept
        assert memory.author_id == B
    assert not (await bot.engine.index.check(space_id=B)).drift
    again = await send_file(bot, B, "export.json", doc.document)
    assert "added 0 new memories, 3 were already here" in (again.text or "")
    assert len(await texts(bot, B)) == 3


async def test_a_text_file_is_one_memory_per_paragraph(bot: BotUnderTest) -> None:
    await bot.say(C, "buy oat milk")
    body = "buy oat milk\n\nthe boiler code is 7781\nit is on the left\n\r\n  \n# a heading\n"
    done = await send_file(bot, C, "notes.md", body.encode())
    assert "added 2 new memories, 1 was already here" in (done.text or "")
    assert await texts(bot, C) == sorted(
        ["buy oat milk", "the boiler code is 7781\nit is on the left", "# a heading"]
    )


async def test_import_alone_asks_for_the_file_and_a_text_keeps_it_waiting(
    bot: BotUnderTest,
) -> None:
    [question] = await bot.say(A, "/import")
    assert "Send me the file to import" in (question.text or "")
    [still] = await bot.say(A, "hello?")
    assert "waiting for the file" in (still.text or "")
    done = await send_file(bot, A, "notes.txt", b"first\n\nsecond", caption=None)
    assert "added 2 new memories" in (done.text or "")
    assert await texts(bot, A) == ["first", "second"]
    [saved] = await bot.say(A, "a plain message is saved again")
    assert "Saved" in (saved.text or "")


async def test_bad_files_are_refused_with_the_reason_and_nothing_is_written(
    bot: BotUnderTest,
) -> None:
    broken = await send_file(bot, A, "export.json", b'{"memories": [{"text": "a"},]}')
    assert "not valid JSON (line 1, column 29" in (broken.text or "")
    assert "Nothing was imported" in (broken.text or "")
    items = [{"text": "fine"}, {"text": "   "}, {"text": "also fine"}]
    empty = await send_file(bot, A, "e.json", json.dumps({"memories": items}).encode())
    assert "Memory 2 in the file: There is nothing to remember" in (empty.text or "")
    shape = await send_file(bot, A, "e.json", b'{"notes": []}')
    assert "not an export" in (shape.text or "")
    latin = await send_file(bot, A, "notes.txt", "caf\xe9\n\ncr\xe8me".encode("latin-1"))
    assert "not UTF-8 text (a bad byte on line 1)" in (latin.text or "")
    long = await send_file(bot, A, "notes.txt", b"ok\n\n" + b"x" * 5000)
    assert "paragraph on line 3: That text has 5,000 characters" in (long.text or "")
    pdf = await send_file(bot, A, "scan.pdf", b"%PDF-1.4")
    assert ".json file that /export sends" in (pdf.text or "")
    assert await texts(bot, A) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[" * 50_000, "nests lists or objects too deeply"),
        (b'[{"text": "a", "n": ' + b"7" * 5000 + b"}]", "a number too long to read"),
        (b'[{"text": "a", "created_at": "0001-01-01T00:00:00+01:00"}]', "is not between 1900"),
        (b'[{"text": "a", "expires_at": "9999-12-31T23:59:59-05:00"}]', "is not between 1900"),
        (b'["fine", "hi \\ud800"]', "Memory 2 in the file: That text holds a character"),
    ],
    ids=["deep", "long-number", "year-1", "year-9999", "surrogate"],
)
async def test_hostile_files_are_refused_whole_without_a_dead_letter(
    bot: BotUnderTest, content: bytes, reason: str
) -> None:
    answer = await send_file(bot, A, "export.json", content)
    assert reason in (answer.text or "")
    assert "Nothing was imported" in (answer.text or "")
    sent = [m.text or "" for m in bot.emulator.sent(A)]
    assert not [text for text in sent if "Importing" in text or "went wrong" in text], sent
    assert await UpdateLedger(bot.engine.stores).dead_letters() == []
    assert await texts(bot, A) == []


async def test_an_import_through_a_store_blip_says_it_goes_on_and_does(
    bot: BotUnderTest,
) -> None:
    """The retry finishes what the blip paused: the first message must not tell the user to
    send the file again (it said so, then the import finished by itself: issue 30)."""
    notes = [f"imported note number {i}" for i in range(150)]
    bot.engine.stores.faults.fail(Step.VECTOR_WRITE, times=1)
    await send_file(bot, A, "notes.json", json.dumps(notes).encode())
    sent = [m.text or "" for m in bot.emulator.sent(A)]
    paused = [text for text in sent if text.startswith("⏸ The import paused")]
    assert len(paused) == 1, sent
    assert "It goes on by itself" in paused[0]
    assert sent[-1].startswith("📥 Imported <i>notes.json</i>: added 150 new memories"), sent
    assert not [text for text in sent if "send the file again" in text]
    assert len(await texts(bot, A)) == 150
    assert not (await bot.engine.index.check(space_id=A)).drift


async def test_a_file_over_the_limit_is_refused_before_it_is_downloaded(
    bot: BotUnderTest,
) -> None:
    answer = await send_file(bot, A, "big.txt", b"word " * (MAX_IMPORT_BYTES // 5 + 10))
    assert "I import files of up to 2.0 MB" in (answer.text or "")
    assert not [c for c in bot.emulator.calls if c[1] == "getFile"]
    assert await texts(bot, A) == []


async def test_too_many_for_the_storage_quota_is_refused_up_front(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    await bot.engine.quotas.set_limits(user_id=A, daily_ops=None, max_memories=5)
    await bot.say(A, "already one")
    body = "\n\n".join(f"note number {i}" for i in range(6)).encode()
    answer = await send_file(bot, A, "notes.txt", body)
    assert "would add 6 memories, but there is room for only 4 more" in (answer.text or "")
    assert await texts(bot, A) == ["already one"]


async def test_progress_is_one_message_edited_as_chunks_commit(bot: BotUnderTest) -> None:
    count = 3 * bot.settings.bulk_chunk_size + 5
    body = "\n\n".join(f"remember item {i} of the big list" for i in range(count)).encode()
    done = await send_file(bot, A, "big.txt", body)
    assert f"added {count:,} new memories" in (done.text or "")
    edits = [
        c[2]["text"]
        for c in bot.emulator.calls
        if c[1] == "editMessageText" and str(c[2].get("message_id")) == str(done.message_id)
    ]
    assert any(f"Importing… {bot.settings.bulk_chunk_size}/{count}" in t for t in edits), edits
    assert len(await texts(bot, A)) == count
    assert not (await bot.engine.index.check(space_id=A)).drift


async def test_group_admins_import_into_the_group_and_members_may_not(bot: BotUnderTest) -> None:
    body = b"the meeting is on tuesday\n\nbring chapter 3"
    refused = await send_file(bot, MEMBER, "club.txt", body, chat_id=GROUP)
    assert "Only a group admin can use /import" in (refused.text or "")
    [prompt] = await bot.say(OWNER, "/import", chat_id=GROUP)
    assert prompt.force_reply
    done = await send_file(
        bot, OWNER, "club.txt", body, caption=None, chat_id=GROUP, reply_to=prompt.message_id
    )
    assert "added 2 new memories" in (done.text or "")
    assert await texts(bot, GROUP) == ["bring chapter 3", "the meeting is on tuesday"]
    assert await texts(bot, OWNER) == []
