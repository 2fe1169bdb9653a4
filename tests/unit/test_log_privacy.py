"""No memory text reaches the logs above DEBUG, not even inside tracebacks of failed writes."""

from __future__ import annotations

import asyncio
import logging
import traceback
import uuid

import pytest
from sqlalchemy import insert

from engine.app import MemoryEngine
from engine.clock import utcnow
from engine.errors import AlreadyExists, CommitFailed
from engine.faults import Step
from storage.models import MemoryRow

GROUP = -1005
SECRETS = ("alice's vault code is 4711", "bob's locker combination 9937")


def assert_nowhere(caplog: pytest.LogCaptureFixture, *errors: BaseException) -> None:
    shown = caplog.text + "".join("".join(traceback.format_exception(error)) for error in errors)
    for secret in SECRETS:
        assert secret not in shown
        assert secret.split()[-1] not in shown  # not even the code itself


async def test_a_failing_group_commit_of_two_users_saves_logs_no_text(
    fake_engine: MemoryEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake_engine.stores.faults.fail(Step.COMMIT, times=3)  # the batch, then each half of it
    outcomes = await asyncio.gather(
        *(
            fake_engine.writes.save(space_id=GROUP, author_id=author, text=secret)
            for author, secret in zip((101, 202), SECRETS, strict=True)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, CommitFailed) and outcome.ids for outcome in outcomes)
    for outcome in outcomes:
        assert isinstance(outcome, BaseException)
        logging.getLogger("memorybot.bot").error("update failed", exc_info=outcome)
    assert "outcome=compensated" in caplog.text or "outcome=rolled_back" in caplog.text
    assert_nowhere(caplog, *[o for o in outcomes if isinstance(o, BaseException)])
    assert (await fake_engine.reads.page(space_id=GROUP)).total == 0


async def test_sql_errors_hide_their_parameters(
    fake_engine: MemoryEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    memory_id = uuid.uuid4()
    row = {"id": memory_id, "space_id": GROUP, "author_id": 101, "kind": "note", "tags": []}
    row |= {"created_at": utcnow(), "updated_at": utcnow()}

    async def insert_twice() -> None:
        async with fake_engine.stores.unit_of_work("probe") as uow:
            for secret in SECRETS:  # the same primary key twice: a unique violation
                await uow.session.execute(insert(MemoryRow).values(**row, text=secret))

    with pytest.raises(AlreadyExists) as caught:
        await insert_twice()
    logging.getLogger("memorybot.bot").error("update failed", exc_info=caught.value)
    assert caught.value.__cause__ is not None
    assert_nowhere(caplog, caught.value)
