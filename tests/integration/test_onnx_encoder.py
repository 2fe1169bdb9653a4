"""The torch-free encoder (storage/onnx_encoder.py): the same vectors as sentence-transformers'
ONNX path, and a bot process that never imports torch, transformers or sentence-transformers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from storage.embedder import resolve_model_path
from storage.onnx_encoder import OnnxEncoder, UnsupportedModel
from storage.onnx_int8 import ensure_int8_export
from storage.onnx_model import ensure_onnx_export
from tests.integration.test_embedding_backends import SENTENCES

MODEL = "all-MiniLM-L6-v2"
HEAVY = ("torch", "transformers", "sentence_transformers", "onnx")  # onnx: the quantiser
# The bot's start-up path: its modules, an engine on fresh stores, one save and one recall.
START_UP = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    import bot.cli, bot.runner, jobs.runs
    from engine.app import open_engine
    from engine.settings import Settings

    async def main(work: Path) -> None:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite+aiosqlite:///{work / 'memorybot.db'}",
            chroma_path=work / "chroma",
        )
        engine = await open_engine(settings)
        try:
            await engine.users.register(user_id=1)
            await engine.writes.save(space_id=1, text="my passport is in the blue drawer")
            found = await engine.reads.recall(space_id=1, query="where is my passport")
            assert found, "the recall found nothing"
        finally:
            await engine.aclose()

    asyncio.run(main(Path(sys.argv[1])))
    print(json.dumps(sorted(name for name in HEAVY if name in sys.modules)))
    """
).replace("HEAVY", repr(HEAVY))


def texts() -> list[str]:
    """A few hundred texts: the shared sample, lengths from empty to past the 256-token window."""
    words = [
        "the",
        "spare",
        "key",
        "is",
        "under",
        "the",
        "blue",
        "mat",
        "next",
        "to",
        "the",
        "garden",
        "shed",
    ]
    made = [" ".join(words[: 1 + i % len(words)]) * (1 + i % 9) for i in range(300)]
    return [*SENTENCES, *made, "", " ", "a" * 5000]


@pytest.fixture
def export(model_cache: Path) -> Path:
    return ensure_onnx_export(resolve_model_path(MODEL), model_cache)


def test_the_vectors_are_sentence_transformers_own(export: Path) -> None:
    from sentence_transformers import SentenceTransformer

    sample = texts()
    reference = SentenceTransformer(str(export), backend="onnx", local_files_only=True).encode(
        sample, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    )
    ours = OnnxEncoder(export).encode(sample, batch_size=64)
    assert ours.dtype == np.float32
    assert ours.shape == (len(sample), 384)
    worst = int(np.abs(ours - reference).max(axis=1).argmax())
    assert np.abs(ours - reference).max() <= 1e-5, sample[worst][:80]
    one_by_one = np.concatenate([OnnxEncoder(export).encode([text]) for text in sample[:20]])
    np.testing.assert_allclose(one_by_one, ours[:20], atol=1e-5)
    assert OnnxEncoder(export).encode([]).shape == (0, 384)


def test_an_export_that_does_not_average_is_refused(export: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cls-export"
    shutil.copytree(export, copy)
    (copy / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "cls"}))
    with pytest.raises(UnsupportedModel, match="mean pooling"):
        OnnxEncoder(copy)


@pytest.mark.parametrize("backend", ["onnx", "auto"])  # auto: a new index runs int8
def test_the_bot_process_imports_no_torch(backend: str, model_cache: Path, tmp_path: Path) -> None:
    # Made beforehand, as a bot's earlier start leaves them (a missing export would be made
    # by a grandchild process, which this check would not see).
    ensure_int8_export(resolve_model_path(MODEL), model_cache)
    env = {**os.environ, "MODEL_CACHE_PATH": str(model_cache), "EMBEDDING_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-c", START_UP, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
