"""Conversation state (/save and /recall alone, /cancel, restarts) and button validation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from botapi_emulator import SentMessage
from engine.clock import utcnow
from engine.faults import Step
from tests.e2e.conftest import BotUnderTest

A, B = 101, 202
SHORT_ID = re.compile(r"<code>([0-9a-f]{8})</code>")
APOLOGY = "Sorry, something went wrong"
EXPIRED = "This button has expired."
NOT_YOURS = "Not yours."


@pytest.fixture(autouse=True)
async def _no_apology(bot: BotUnderTest, request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """No update failed for good (xfail tests expose exactly such failures: not checked)."""
    yield
    if request.node.get_closest_marker("xfail") is None:
        apologies = [m.text for m in bot.emulator.sent() if APOLOGY in (m.text or "")]
        assert not apologies, apologies


def short_id(message: SentMessage) -> str:
    match = SHORT_ID.search(message.text or "")
    assert match is not None, message.text
    return match.group(1)


async def texts(bot: BotUnderTest, user_id: int) -> list[str]:
    page = await bot.engine.reads.page(space_id=user_id, limit=1000)
    return [m.text for m in page.items]


async def press_forged(
    bot: BotUnderTest, user_id: int, message_id: int, data: str, *, within: float = 10.0
) -> dict[str, Any] | None:
    """Press `data` on a bot message even if no such button is on it (as a forger would).

    Returns the callback answer, or None if the update ended in an apology without one.
    """
    answered = len(bot.emulator.callback_answers)
    apologies = sum(APOLOGY in (m.text or "") for m in bot.emulator.sent(user_id))
    bot.emulator.press_button(user_id, message_id, data, strict=False)
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if len(bot.emulator.callback_answers) > answered:
            return bot.emulator.callback_answers[answered]
        if sum(APOLOGY in (m.text or "") for m in bot.emulator.sent(user_id)) > apologies:
            return None
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no answer and no apology for {data!r}")


# ---- /save and /recall alone -------------------------------------------------------------------
async def test_save_alone_asks_then_saves_next_message(bot: BotUnderTest) -> None:
    [question] = await bot.say(A, "/save")
    assert "What should I remember?" in (question.text or "")
    assert await texts(bot, A) == []
    [saved] = await bot.say(A, "the boiler code is 7781")
    assert "Saved" in (saved.text or "")
    assert await texts(bot, A) == ["the boiler code is 7781"]
    [again] = await bot.say(A, "and the gas meter is in the hall")
    assert "Saved" in (again.text or "")
    assert len(await texts(bot, A)) == 2


@pytest.mark.dates
async def test_save_alone_with_ttl_keeps_the_ttl(bot: BotUnderTest) -> None:
    await bot.say(A, "/save 2h")
    [saved] = await bot.say(A, "the parcel arrives this afternoon")
    assert "it will be deleted on" in (saved.text or "")
    assert "(in 2 hours)" in (saved.text or "")
    assert "/remind in 2 hours" in (saved.text or "")
    [memory] = (await bot.engine.reads.page(space_id=A)).items
    assert memory.expires_at is not None
    expected = utcnow() + timedelta(hours=2)
    assert abs((memory.expires_at - expected).total_seconds()) < 60


@pytest.mark.dates
async def test_a_prompted_save_hit_by_a_store_blip_keeps_its_ttl(bot: BotUnderTest) -> None:
    """The prompt is cleared in the save's unit of work: the blip rolls both back, the retry
    still finds the prompt and saves with its TTL (it was cleared first, and the retry saved
    the text as a plain note that never expires)."""
    await bot.say(A, "/save 2h")
    bot.engine.stores.faults.fail(Step.VECTOR_WRITE, times=1)
    [saved] = await bot.say(A, "the parcel arrives this afternoon")
    assert "(in 2 hours)" in (saved.text or "")
    [memory] = (await bot.engine.reads.page(space_id=A)).items
    assert memory.expires_at is not None
    assert bot.engine.stores.faults._remaining[Step.VECTOR_WRITE] == 0, "the blip happened"
    [plain] = await bot.say(A, "a note after the prompt was answered")
    assert "deleted" not in (plain.text or ""), "the prompt was answered once"


async def test_recall_alone_asks_then_searches(bot: BotUnderTest) -> None:
    await bot.say(A, "my passport is in the blue drawer")
    [question] = await bot.say(A, "/recall")
    assert "What are you looking for?" in (question.text or "")
    [found] = await bot.say(A, "where is my passport")
    assert "1. my passport is in the blue drawer" in (found.plain or "")
    assert await texts(bot, A) == ["my passport is in the blue drawer"]
    [saved] = await bot.say(A, "next plain text is saved again")
    assert "Saved" in (saved.text or "")


async def test_a_prompted_recall_that_fails_once_is_retried_as_a_recall(
    bot: BotUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prompt is cleared after the answer: a recall that fails (a store blip) is retried
    as the prompt's answer (it was cleared first, and the retry saved the question as a
    note in a private chat)."""
    await bot.say(A, "my passport is in the blue drawer")
    await bot.say(A, "/recall")
    reads = bot.engine.reads
    real, failures = reads.recall, [ConnectionResetError("the database went away")]

    async def recall_failing_once(**kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(**kwargs)

    monkeypatch.setattr(reads, "recall", recall_failing_once)
    [found] = await bot.say(A, "where is my passport")
    assert not failures, "the recall failed once"
    assert "1. my passport is in the blue drawer" in (found.plain or "")
    assert await texts(bot, A) == ["my passport is in the blue drawer"], "no question saved"
    [saved] = await bot.say(A, "a plain note after the answer")
    assert "Saved" in (saved.text or ""), "the prompt was answered once"


async def test_cancel_resets_a_pending_recall(bot: BotUnderTest) -> None:
    await bot.say(A, "/recall")
    [cancelled] = await bot.say(A, "/cancel")
    assert cancelled.text == "Cancelled."
    [saved] = await bot.say(A, "where is my passport")
    assert "Saved" in (saved.text or "")
    assert await texts(bot, A) == ["where is my passport"]


async def test_cancel_resets_a_pending_save(bot: BotUnderTest) -> None:
    await bot.say(A, "/save 2h")
    await bot.say(A, "/cancel")
    [saved] = await bot.say(A, "kept for good")
    assert "deleted" not in (saved.text or "")
    [memory] = (await bot.engine.reads.page(space_id=A)).items
    assert memory.expires_at is None


async def test_pending_save_survives_restart(bot: BotUnderTest) -> None:
    await bot.say(A, "/save")
    await bot.restart()
    [saved] = await bot.say(A, "remembered across a restart")
    assert "Saved" in (saved.text or "")
    assert await texts(bot, A) == ["remembered across a restart"]


async def test_pending_state_is_per_user(bot: BotUnderTest) -> None:
    await bot.say(B, "my passport is in the blue drawer")
    await bot.say(A, "/recall")
    [saved] = await bot.say(B, "where is my passport")
    assert "Saved" in (saved.text or "")
    [found] = await bot.say(A, "passport")
    assert "Nothing found" in (found.text or "")


# ---- buttons: forged, stale, replayed ----------------------------------------------------------
async def test_forged_buttons_expire_and_delete_nothing(bot: BotUnderTest) -> None:
    """Malformed or stale data has expired; another owner's button is "Not yours." (issue 9)."""
    [theirs] = await bot.say(B, "B's locker code is 1234")
    [mine] = await bot.say(A, "A's locker code is 5678")
    forged = [
        ("d:999:deadbeef", NOT_YOURS),
        ("garbage", EXPIRED),
        ("", EXPIRED),
        (f"d:{B}:{short_id(theirs)}", NOT_YOURS),
        (f"u:{B}:{short_id(theirs)}", NOT_YOURS),
        (f"fa:{B}:00000000", NOT_YOURS),
        (f"d:{A}:deadbeef", EXPIRED),
        (f"d:{A}:{short_id(theirs)}", EXPIRED),
        (f"x:{A}:{short_id(mine)}", EXPIRED),
        (f"d:{A}:{short_id(mine)}:extra", EXPIRED),
        # out of range for PostgreSQL's columns: a dead letter there before (issue 30)
        (f"rd:{A}:999999999999", EXPIRED),
        (f"rh:{A}:2147483648", EXPIRED),
        (f"rc:{A}:9999999999", EXPIRED),
        (f"d:{'9' * 20}:deadbeef", EXPIRED),
        (f"rd:{A}:2147483647", "This reminder is no longer scheduled."),  # the largest id
    ]
    for data, expected in forged:
        answer = await press_forged(bot, A, mine.message_id, data)
        assert answer is not None, data
        assert answer["text"] == expected, data
    assert await texts(bot, A) == ["A's locker code is 5678"]
    assert await texts(bot, B) == ["B's locker code is 1234"]
    assert mine.edits == 0


@pytest.mark.parametrize("action", ["rp", "lp"])
async def test_forged_page_button_expires(bot: BotUnderTest, action: str) -> None:
    await bot.say(A, "my passport is in the blue drawer")
    [found] = await bot.say(A, "/recall passport")
    answer = await press_forged(bot, A, found.message_id, f"{action}:{A}:ff")
    assert answer is not None
    assert answer["text"] == EXPIRED
    assert not [m for m in bot.emulator.sent(A) if APOLOGY in (m.text or "")]


async def test_undo_twice_expires(bot: BotUnderTest) -> None:
    [saved] = await bot.say(A, "undo me once")
    data = saved.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    first = await bot.press(A, saved)
    assert first["text"] == f"🗑 Forgot {short_id(saved)}"
    second = await press_forged(bot, A, saved.message_id, data)
    assert second is not None
    assert second["text"] == EXPIRED


async def test_more_on_an_older_recall_expires(bot: BotUnderTest) -> None:
    await bot.say(A, "/start")
    await bot.engine.writes.save_many(
        space_id=A, texts=[f"the cat sleeps on sofa number {i}" for i in range(8)]
    )
    [old] = await bot.say(A, "/recall cat")
    [new] = await bot.say(A, "/recall sofa")
    answer = await bot.press(A, old, 5)
    assert answer["text"] == EXPIRED
    assert old.edits == 0
    answer = await bot.press(A, new, 5)
    assert answer["text"] in (None, "")
    assert new.edits == 1


async def test_stale_forget_all_confirmation_expires(bot: BotUnderTest) -> None:
    await bot.say(A, "one thing")
    await bot.say(A, "another thing")
    [old] = await bot.say(A, "/forget_all")
    [new] = await bot.say(A, "/forget_all")
    answer = await bot.press(A, old, 0)
    assert answer["text"] == EXPIRED
    assert len(await texts(bot, A)) == 2
    answer = await bot.press(A, new, 0)
    assert answer["text"] == "Done"
    assert await texts(bot, A) == []


async def test_forget_all_confirmation_works_once(bot: BotUnderTest) -> None:
    await bot.say(A, "one thing")
    [prompt] = await bot.say(A, "/forget_all")
    data = prompt.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    assert (await bot.press(A, prompt, 0))["text"] == "Done"
    await bot.say(A, "a new thing after the wipe")
    again = await press_forged(bot, A, prompt.message_id, data)
    assert again is not None
    assert again["text"] == EXPIRED
    assert await texts(bot, A) == ["a new thing after the wipe"]


async def test_forget_all_by_another_user_is_not_theirs(bot: BotUnderTest) -> None:
    await bot.say(A, "A's thing")
    await bot.say(B, "B's thing")
    [prompt] = await bot.say(B, "/forget_all")
    data = prompt.reply_markup["inline_keyboard"][0][0]["callback_data"]  # type: ignore[index]
    [mine] = await bot.say(A, "/list")
    answer = await press_forged(bot, A, mine.message_id, data)
    assert answer is not None
    assert answer["text"] == NOT_YOURS
    assert await texts(bot, B) == ["B's thing"]
