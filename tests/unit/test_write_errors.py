"""Write errors keep what caused them as `__cause__` (a circuit breaker walks that chain)."""

from __future__ import annotations

import uuid

import pytest

from engine.errors import (
    CommitFailed,
    SqlWriteFailed,
    VectorWriteFailed,
    WriteFailed,
)
from engine.faults import InjectedFault, Step
from storage.db import Database
from tests.fakes.vector_index import InMemoryVectorIndex
from tests.unit.uow_kit import faults_at, run, saving


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (Step.FLUSH, SqlWriteFailed),
        (Step.VECTOR_WRITE, VectorWriteFailed),
        (Step.COMMIT, CommitFailed),
    ],
)
async def test_each_step_keeps_the_injected_fault_as_the_cause(
    db: Database, store: InMemoryVectorIndex, step: Step, expected: type[WriteFailed]
) -> None:
    with pytest.raises(expected) as caught:
        await run(db, store, saving(uuid.uuid4()), faults=faults_at(step))
    assert isinstance(caught.value.__cause__, InjectedFault)


async def test_a_vector_store_error_is_the_cause_of_the_vector_write_failure(
    db: Database, store: InMemoryVectorIndex
) -> None:
    store.fail_next = {"upsert"}
    with pytest.raises(VectorWriteFailed) as caught:
        await run(db, store, saving(uuid.uuid4()))
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert "ConnectionError" in str(caught.value)


def store_call(cause: Exception) -> None:
    raise cause


def fail_without_from(kind: type[WriteFailed], cause: Exception) -> None:
    try:
        store_call(cause)
    except Exception as error:
        raise kind("save", ["a"], error)  # noqa: B904 - the point: no `from`


@pytest.mark.parametrize("kind", [SqlWriteFailed, VectorWriteFailed, CommitFailed])
def test_the_cause_is_kept_even_when_raised_without_from(kind: type[WriteFailed]) -> None:
    cause = TimeoutError("store did not answer")
    with pytest.raises(kind) as caught:
        fail_without_from(kind, cause)
    assert caught.value.__cause__ is cause
    assert kind("save", ["a"]).__cause__ is None
