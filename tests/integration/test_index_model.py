"""The index knows its model: a start with another model is refused, `check` reports it,
`reindex` rebuilds with the new one (both databases, real embedded Chroma)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from engine.app import MemoryEngine, open_engine
from engine.index_model import (
    MODEL_KEY,
    IndexModelMismatch,
    ModelIdentity,
    model_dimension,
    model_identity,
)
from engine.settings import Settings
from storage.embedder import Embedder, resolve_model_path
from tests.conftest import fake_encode

USER = 5_501
NOTES = ["the spare key is under the blue pot", "dentist on friday at nine", "wifi is hunter2"]
MINILM = ModelIdentity("all-MiniLM-L6-v2", 384, "onnx-int8")  # a new index gets int8
OTHER = ModelIdentity("fake-256", 256, "onnx")
REFUSAL = (
    "the vector index was built with all-MiniLM-L6-v2 (384, int8); this start uses fake-256 (256) "
    "— run `memorybot reindex` to rebuild it"
)


def encode_256(texts: list[str]) -> np.ndarray:
    """A second "model": bag-of-words vectors of another dimension."""
    rows = np.zeros((len(texts), 256), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            rows[i, int(hashlib.sha1(word.encode()).hexdigest(), 16) % 256] += 1.0
        rows[i] /= float(np.linalg.norm(rows[i])) or 1.0
    return rows


async def with_notes(settings: Settings) -> None:
    """A store built with the default model (all-MiniLM-L6-v2), holding NOTES."""
    engine = await open_engine(settings, embedder=Embedder(fake_encode))
    try:
        await engine.users.register(user_id=USER)
        for note in NOTES:
            await engine.writes.save(space_id=USER, text=note)
        status = await engine.index.model_status()
        assert (status.recorded, status.mismatch) == (MINILM, False)
    finally:
        await engine.aclose()


async def open_other(settings: Settings, *, model_check: bool = True) -> MemoryEngine:
    return await open_engine(
        settings, embedder=Embedder(encode_256), model=OTHER, model_check=model_check
    )


async def test_another_model_is_refused_until_reindex_rebuilds_with_it(
    settings: Settings,
) -> None:
    await with_notes(settings)
    with pytest.raises(IndexModelMismatch) as refused:
        await open_other(settings)
    assert str(refused.value) == REFUSAL
    engine = await open_other(settings, model_check=False)  # what `reindex` and `check` do
    try:
        assert (await engine.index.model_status()).mismatch
        assert await engine.index.reindex() == len(NOTES)
        status = await engine.index.model_status()
        assert (status.recorded, status.mismatch) == (OTHER, False)
        assert not (await engine.index.check()).drift
        [best, *_] = await engine.reads.recall(space_id=USER, query="where is the spare key")
        assert best.memory.text == NOTES[0]
    finally:
        await engine.aclose()
    again = await open_other(settings)  # the new model starts now
    await again.aclose()
    with pytest.raises(IndexModelMismatch, match="built with fake-256 \\(256\\)"):
        await open_engine(settings, embedder=Embedder(fake_encode))


async def test_onnx_or_torch_does_not_count_int8_does(settings: Settings) -> None:
    fp32 = settings.model_copy(update={"embedding_backend": "onnx"})
    engine = await open_engine(fp32, embedder=Embedder(fake_encode))
    await engine.aclose()
    torch = ModelIdentity("all-MiniLM-L6-v2", 384, "torch")
    engine = await open_engine(settings, embedder=Embedder(fake_encode), model=torch)
    try:
        assert not (await engine.index.model_status()).mismatch
    finally:
        await engine.aclose()
    with pytest.raises(IndexModelMismatch, match=r"\(384\); this start uses .*\(384, int8\)"):
        await open_engine(settings, embedder=Embedder(fake_encode), model=MINILM)


async def test_a_store_without_a_recorded_model_adopts_the_current_one(
    settings: Settings,
) -> None:
    await with_notes(settings)
    engine = await open_engine(settings, embedder=Embedder(fake_encode))
    async with engine.stores.unit_of_work("forget_model") as uow:  # as before this change
        await uow.kv.delete_prefix(MODEL_KEY)
    await engine.aclose()
    adopted = await open_other(settings)
    try:
        assert (await adopted.index.model_status()).recorded == OTHER
    finally:
        await adopted.aclose()


def test_the_identity_comes_from_the_settings_and_the_model_files(tmp_path: Path) -> None:
    packaged = resolve_model_path("all-MiniLM-L6-v2")
    assert model_dimension(packaged) == 384
    assert model_identity(Settings(_env_file=None)) == MINILM  # type: ignore[call-arg]
    by_folder = Settings(_env_file=None, embedding_model=str(packaged))  # type: ignore[call-arg]
    assert model_identity(by_folder).name == "all-MiniLM-L6-v2"
    copy = tmp_path / "paraphrase-multilingual-MiniLM-L12-v2"
    copy.mkdir()
    (copy / "config.json").write_text('{"hidden_size": 768}')
    local = Settings(_env_file=None, embedding_model=str(copy))  # type: ignore[call-arg]
    # int8 was measured on all-MiniLM-L6-v2 only: another model's new index stays fp32
    assert model_identity(local) == ModelIdentity(copy.name, 768, "onnx")
    torch = Settings(_env_file=None, embedding_backend="torch")  # type: ignore[call-arg]
    assert model_identity(torch) == ModelIdentity("all-MiniLM-L6-v2", 384, "torch")


async def test_the_cli_refuses_in_one_line_and_check_reports_the_mismatch(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await with_notes(settings)
    other = tmp_path / "other-minilm"  # the same files under another model name
    other.mkdir()
    for item in resolve_model_path("all-MiniLM-L6-v2").iterdir():
        (other / item.name).symlink_to(item)
    env = {
        "DATABASE_URL": settings.database_url,
        "CHROMA_PATH": str(settings.chroma_path),
        "CHROMA_SHARDS": str(settings.chroma_shards),
        "EMBEDDING_MODEL": str(other),
        "LOG_LEVEL": "WARNING",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CHROMA_URL", raising=False)
    capsys.readouterr()
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    try:  # main() configures logging for a process; give this one its own back afterwards
        exit_refused = await asyncio.to_thread(main, ["expire"])
        refused = capsys.readouterr().err.strip()
        exit_check = await asyncio.to_thread(main, ["check"])
        out = capsys.readouterr().out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert exit_refused == 2
    assert refused == (
        "memorybot: the vector index was built with all-MiniLM-L6-v2 (384, int8); this start "
        "uses other-minilm (384, int8) — run `memorybot reindex` to rebuild it"
    )
    assert exit_check == 1
    assert "index model      all-MiniLM-L6-v2 (384, int8)" in out
    assert "MODEL MISMATCH: run `memorybot reindex`" in out
