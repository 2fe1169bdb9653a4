"""EMBEDDING_BACKEND=auto: a new index gets int8, an existing index keeps the backend it was
built with until `memorybot reindex` moves it, and `check` says when a faster one exists
(both databases, real embedded Chroma; the CLI part runs the real model)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from engine.app import MemoryEngine, open_engine
from engine.index_model import MODEL_KEY, NEW_INDEX_BACKEND, IndexModelMismatch
from engine.settings import Settings
from storage.embedder import Embedder, resolve_model_path
from tests.conftest import fake_encode

USER = 5_601
NOTES = ["the spare key is under the blue pot", "dentist on friday at nine"]


async def opened(settings: Settings, **options: object) -> MemoryEngine:
    return await open_engine(settings, embedder=Embedder(fake_encode), **options)  # type: ignore[arg-type]


async def fp32_index(settings: Settings) -> None:
    """An index built before int8 existed: recorded as `onnx`, holding NOTES."""
    engine = await opened(settings.model_copy(update={"embedding_backend": "onnx"}))
    try:
        await engine.users.register(user_id=USER)
        for note in NOTES:
            await engine.writes.save(space_id=USER, text=note)
    finally:
        await engine.aclose()


def backend_of(engine: MemoryEngine) -> str:
    assert engine.stores.model is not None
    assert engine.stores.model.backend == engine.stores.settings.embedding_backend
    return engine.stores.settings.embedding_backend


async def test_a_new_index_gets_int8(settings: Settings) -> None:
    assert settings.embedding_backend == "auto"
    engine = await opened(settings)
    try:
        assert backend_of(engine) == NEW_INDEX_BACKEND == "onnx-int8"
        assert (await engine.index.model_status()).recorded == engine.stores.model
    finally:
        await engine.aclose()


async def test_another_models_new_index_stays_fp32(settings: Settings, tmp_path: Path) -> None:
    """int8 passed its quality gate on all-MiniLM-L6-v2 only."""
    other = tmp_path / "other-minilm"  # the same files under another model's name
    other.mkdir()
    for item in resolve_model_path("all-MiniLM-L6-v2").iterdir():
        (other / item.name).symlink_to(item)
    engine = await opened(settings.model_copy(update={"embedding_model": str(other)}))
    try:
        assert backend_of(engine) == "onnx"
        assert (await engine.index.model_status()).faster_backend is None
    finally:
        await engine.aclose()


async def test_an_fp32_index_keeps_fp32_until_a_reindex_moves_it(settings: Settings) -> None:
    await fp32_index(settings)
    engine = await opened(settings)  # an upgrade: never refused
    try:
        assert backend_of(engine) == "onnx"
        status = await engine.index.model_status()
        assert (status.mismatch, status.faster_backend) == (False, "onnx-int8")
    finally:
        await engine.aclose()
    rebuilding = await opened(settings, model_check=False, rebuild=True)  # what reindex opens
    try:
        assert backend_of(rebuilding) == "onnx-int8"
        assert await rebuilding.index.reindex() == len(NOTES)
    finally:
        await rebuilding.aclose()
    engine = await opened(settings)
    try:
        assert backend_of(engine) == "onnx-int8"
        status = await engine.index.model_status()
        assert status.recorded == engine.stores.model
        assert (status.mismatch, status.faster_backend) == (False, None)
        [best, *_] = await engine.reads.recall(space_id=USER, query="spare key")
        assert best.memory.text == NOTES[0]
    finally:
        await engine.aclose()


async def test_naming_another_precision_than_the_index_is_refused(settings: Settings) -> None:
    await fp32_index(settings)
    int8 = settings.model_copy(update={"embedding_backend": "onnx-int8"})
    with pytest.raises(IndexModelMismatch, match=r"built with .*\(384\); .*\(384, int8\)"):
        await opened(int8)
    torch = await opened(settings.model_copy(update={"embedding_backend": "torch"}))
    await torch.aclose()  # the same vectors as onnx: allowed


async def test_vectors_without_a_record_are_taken_for_fp32(settings: Settings) -> None:
    await fp32_index(settings)
    engine = await opened(settings)
    async with engine.stores.unit_of_work("forget_model") as uow:  # as before models were
        await uow.kv.delete_prefix(MODEL_KEY)  # recorded (and before int8)
    await engine.aclose()
    engine = await opened(settings)
    try:
        assert backend_of(engine) == "onnx"
        assert (await engine.index.model_status()).recorded == engine.stores.model
    finally:
        await engine.aclose()


async def test_check_says_a_faster_backend_exists_and_reindex_moves_to_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await fp32_index(settings)
    env = {
        "DATABASE_URL": settings.database_url,
        "CHROMA_PATH": str(settings.chroma_path),
        "CHROMA_SHARDS": str(settings.chroma_shards),
        "MODEL_CACHE_PATH": str(settings.model_cache_path),
        "LOG_LEVEL": "WARNING",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CHROMA_URL", raising=False)
    monkeypatch.delenv("EMBEDDING_BACKEND", raising=False)
    capsys.readouterr()
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    outputs: list[tuple[int, str]] = []
    try:  # main() configures logging for a process; give this one its own back afterwards
        for command in (["check"], ["reindex"], ["check"]):
            exit_code = await asyncio.to_thread(main, command)
            outputs.append((exit_code, capsys.readouterr().out))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    (before_code, before), (reindex_code, reindexed), (after_code, after) = outputs
    assert before_code == 0, before
    assert "index model      all-MiniLM-L6-v2 (384)\n" in before
    assert "this model       all-MiniLM-L6-v2 (384) (onnx)" in before
    assert "faster backend   onnx-int8 is available: `memorybot reindex` moves" in before
    assert reindex_code == 0, reindexed
    assert f"reindexed {len(NOTES)} memories into generation 2" in reindexed
    assert after_code == 0, after
    assert "index model      all-MiniLM-L6-v2 (384, int8)" in after
    assert "this model       all-MiniLM-L6-v2 (384, int8) (onnx-int8)" in after
    assert "faster backend" not in after


async def test_a_running_bot_follows_a_reindex_to_int8(
    settings: Settings, real_encode: Callable[[list[str]], np.ndarray]
) -> None:
    await fp32_index(settings)
    bot = await opened(settings)  # running on the fp32 index
    try:
        assert backend_of(bot) == "onnx"
        rebuilding = await opened(settings, model_check=False, rebuild=True)
        try:
            await rebuilding.index.reindex()  # `memorybot reindex` next to the running bot
        finally:
            await rebuilding.aclose()
        assert await bot.index.follow_generation()
        assert backend_of(bot) == "onnx-int8"
        status = await bot.index.model_status()
        assert (status.recorded, status.mismatch) == (bot.stores.model, False)
        text = "the bike lock code is 4711"
        vector = await bot.stores.embedder.embed(text)  # the real int8 model now
        np.testing.assert_allclose(vector, real_encode([text])[0], atol=1e-6)
        await bot.writes.save(space_id=USER, text=text)
        assert not (await bot.index.check()).drift
    finally:
        await bot.aclose()


async def test_a_process_that_named_its_backend_does_not_follow(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await fp32_index(settings)
    fp32 = await opened(settings.model_copy(update={"embedding_backend": "onnx"}))
    try:
        rebuilding = await opened(settings, model_check=False, rebuild=True)
        try:
            await rebuilding.index.reindex()
        finally:
            await rebuilding.aclose()
        with caplog.at_level(logging.ERROR, logger="memorybot.index"):
            assert await fp32.index.follow_generation()
        assert backend_of(fp32) == "onnx"
        assert "restart it" in caplog.text
    finally:
        await fp32.aclose()
