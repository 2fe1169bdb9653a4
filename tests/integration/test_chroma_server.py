"""Server mode: the core paths through CHROMA_URL against a real `chroma run`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from engine.app import MemoryEngine, open_engine
from engine.errors import CommitFailed
from engine.faults import Faults, Step
from engine.settings import Settings
from storage.embedder import Embedder


@pytest.fixture
async def server_engine(
    settings: Settings,
    chroma_server: str,
    real_encode: Callable[[list[str]], np.ndarray],
    faults: Faults,
) -> AsyncIterator[MemoryEngine]:
    remote = settings.model_copy(
        update={"chroma_url": chroma_server, "chroma_collection": f"t{uuid.uuid4().hex[:10]}"}
    )
    opened = await open_engine(remote, embedder=Embedder(real_encode), faults=faults)
    yield opened
    await opened.stores.vectors.drop_generation(opened.index.generation)
    await opened.aclose()


async def test_save_recall_forget_check_through_the_server(server_engine: MemoryEngine) -> None:
    writes, reads, index = server_engine.writes, server_engine.reads, server_engine.index
    await server_engine.users.register(user_id=1)
    await server_engine.users.register(user_id=2)
    saved = await writes.save(space_id=1, text="my passport is in the blue drawer")
    await writes.save_many(space_id=1, texts=["buy milk", "water the plants"])
    await writes.save(space_id=2, text="someone else's passport")
    hits = await reads.recall(space_id=1, query="where did I leave my passport")
    assert hits[0].memory.id == saved.memory.id
    assert all(h.memory.space_id == 1 for h in hits)
    await writes.forget(space_id=1, memory_id=saved.memory.id)
    report = await index.check()
    assert (report.sql_count, report.vector_count, report.drift) == (3, 3, False)
    assert await writes.forget_all(space_id=1) == 2
    assert (await index.check(space_id=2)).vector_count == 1


async def test_commit_failure_is_compensated_on_the_server(
    server_engine: MemoryEngine, faults: Faults
) -> None:
    await server_engine.users.register(user_id=1)
    faults.fail(Step.COMMIT)
    with pytest.raises(CommitFailed):
        await server_engine.writes.save(space_id=1, text="never lands")
    report = await server_engine.index.check()
    assert (report.sql_count, report.vector_count, report.drift) == (0, 0, False)
