"""Memory spaces on fakes (both databases): a memory never leaves its space.

A private chat is its user's personal space (its id is the user's id); a group is the group's
shared space (a negative id). Authors are kept on each memory.
"""

from __future__ import annotations

import pytest

from engine.admin import AmbiguousTarget, Role
from engine.app import MemoryEngine
from engine.errors import MemoryNotFound, UnknownUser

GROUP_A, GROUP_B = -1001, -1002


async def test_a_group_memory_is_recalled_in_its_group_and_nowhere_else(
    fake_engine: MemoryEngine, alice: int
) -> None:
    saved = await fake_engine.writes.save(
        space_id=GROUP_A, author_id=alice, text="vault code is 4711", topic_id=7
    )
    assert (saved.memory.space_id, saved.memory.author_id) == (GROUP_A, alice)
    assert saved.memory.topic_id == 7
    hits = await fake_engine.reads.recall(space_id=GROUP_A, query="vault code", min_similarity=-1)
    assert [h.memory.id for h in hits] == [saved.memory.id]
    for elsewhere in (GROUP_B, alice, 202):
        found = await fake_engine.reads.recall(
            space_id=elsewhere, query="vault code 4711", min_similarity=-1
        )
        assert found == []
        assert (await fake_engine.reads.page(space_id=elsewhere)).total == 0
        with pytest.raises(MemoryNotFound):
            await fake_engine.reads.resolve(space_id=elsewhere, ref=saved.memory.short_id)


async def test_a_personal_memory_never_shows_in_a_group(
    fake_engine: MemoryEngine, alice: int
) -> None:
    mine = await fake_engine.writes.save(space_id=alice, text="my passport is in the blue drawer")
    assert mine.memory.author_id == alice
    hits = await fake_engine.reads.recall(space_id=GROUP_A, query="passport", min_similarity=-1)
    assert hits == []
    with pytest.raises(MemoryNotFound):
        await fake_engine.writes.forget(space_id=GROUP_A, memory_id=mine.memory.id)
    with pytest.raises(MemoryNotFound):
        await fake_engine.writes.edit(space_id=GROUP_A, memory_id=mine.memory.id, text="x")
    assert await fake_engine.reads.export(space_id=GROUP_A) == []


async def test_an_anonymous_admins_save_belongs_to_that_group_only(
    fake_engine: MemoryEngine,
) -> None:
    """Anonymous admins of two groups share one Telegram sender; their spaces stay apart."""
    saved = await fake_engine.writes.save(
        space_id=GROUP_A, author_id=GROUP_A, text="vault code is 4711"
    )
    assert saved.memory.author_id == GROUP_A
    assert (await fake_engine.reads.page(space_id=GROUP_B)).items == []
    assert [m.text for m in (await fake_engine.reads.page(space_id=GROUP_A)).items] == [
        "vault code is 4711"
    ]


async def test_groups_need_no_registered_user_but_personal_spaces_do(
    fake_engine: MemoryEngine,
) -> None:
    await fake_engine.writes.save(space_id=GROUP_A, author_id=555, text="group note")
    with pytest.raises(UnknownUser):
        await fake_engine.writes.save(space_id=555, text="nobody registered me")
    report = await fake_engine.index.check()
    assert (report.sql_count, report.vector_count, report.drift) == (1, 1, False)


async def test_forget_all_empties_one_space_only(fake_engine: MemoryEngine, alice: int) -> None:
    await fake_engine.writes.save_many(space_id=GROUP_A, author_id=alice, texts=["a", "b"])
    await fake_engine.writes.save(space_id=GROUP_B, author_id=alice, text="c")
    await fake_engine.writes.save(space_id=alice, text="d")
    assert await fake_engine.writes.forget_all(space_id=GROUP_A) == 2
    assert (await fake_engine.reads.page(space_id=GROUP_B)).total == 1
    assert (await fake_engine.reads.page(space_id=alice)).total == 1
    assert not (await fake_engine.index.check()).drift


async def test_only_the_author_of_a_message_edits_its_memory(
    fake_engine: MemoryEngine, alice: int
) -> None:
    await fake_engine.writes.save(
        space_id=GROUP_A, author_id=alice, text="meet at 5", chat_id=GROUP_A, message_id=3
    )
    by_bob = await fake_engine.writes.edit_by_source(
        author_id=202, chat_id=GROUP_A, message_id=3, text="meet at 6"
    )
    assert by_bob is None
    by_alice = await fake_engine.writes.edit_by_source(
        author_id=alice, chat_id=GROUP_A, message_id=3, text="meet at 7"
    )
    assert by_alice is not None
    assert by_alice.text == "meet at 7"
    assert by_alice.space_id == GROUP_A


async def test_group_speakers_are_no_broadcast_recipients_until_they_write_privately(
    fake_engine: MemoryEngine,
) -> None:
    await fake_engine.users.register(user_id=7, private=False)
    assert await fake_engine.broadcasts.recipients() == 0
    user = await fake_engine.users.get(user_id=7)
    assert user is not None
    assert not user.is_active
    await fake_engine.users.register(user_id=7, private=True)
    assert await fake_engine.broadcasts.recipients() == 1
    await fake_engine.users.register(user_id=7, private=False)  # seen in a group again
    assert await fake_engine.broadcasts.recipients() == 1


async def test_settings_are_the_truth_about_admins_unless_role_decided(
    fake_engine: MemoryEngine,
) -> None:
    admin = fake_engine.admin
    for user_id in (1, 2, 3):
        await fake_engine.users.register(user_id=user_id, username=f"u{user_id}")
    await admin.set_role(actor_id=1, target="2", role=Role.ADMIN)  # granted with /role
    async with fake_engine.stores.unit_of_work("seed") as uow:
        user = await uow.users.get(3)
        assert user is not None
        user.role = "admin"  # e.g. from an ADMIN_USER_IDS that no longer names 3
    demoted = await admin.sync_settings_admins(frozenset({1}))
    assert demoted == [3]
    assert await admin.role_of(1) == Role.ADMIN
    assert await admin.role_of(2) == Role.ADMIN
    assert await admin.role_of(3) == Role.USER
    entries = await admin.latest_audit(limit=5)
    assert any(e.target == "3" and e.details.get("to") == "user" for e in entries)


async def test_role_by_username_needs_a_unique_match(fake_engine: MemoryEngine) -> None:
    await fake_engine.users.register(user_id=1, username="sam")
    await fake_engine.users.register(user_id=2, username="Sam")  # took the name over
    with pytest.raises(AmbiguousTarget):
        await fake_engine.admin.set_role(actor_id=9, target="@sam", role=Role.VIEWER)
    assert await fake_engine.admin.role_of(1) == Role.USER
    assert await fake_engine.admin.set_role(actor_id=9, target="2", role=Role.VIEWER) == 2
