"""The int8 model: made once beside the fp32 export, and as good at recall as fp32.

The quality gate for `onnx-int8` as the default backend of new indexes: on each labelled set
of tests/data/recall_set.py it may lose at most one question against fp32, at recall@1 and at
recall@5, asked by meaning alone (the model's own ranking) and in hybrid mode (what users get).
The comparison is between models, so it runs on SQLite only: a database adds nothing to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from engine.app import MemoryEngine, open_engine
from engine.settings import Settings
from storage import onnx_int8
from storage.embedder import Backend, Embedder, resolve_model_path, sentence_transformer_encoder
from storage.onnx_model import MARKER, export_folder, is_trusted, source_fingerprint
from tests.data.recall_eval import load, ranks, score
from tests.data.recall_set import (
    ENGLISH_NOTES,
    ENGLISH_QUESTIONS,
    MULTILINGUAL_NOTES,
    MULTILINGUAL_QUESTIONS,
)
from tests.integration.test_embedding_backends import SENTENCES

MODEL = "all-MiniLM-L6-v2"
SETS = {
    "english": (ENGLISH_NOTES, [(q, key) for q, key, _ in ENGLISH_QUESTIONS]),
    "multilingual": (MULTILINGUAL_NOTES, MULTILINGUAL_QUESTIONS),
}
REAL_QUANTISE = onnx_int8._quantise


def encoder(backend: Backend, cache: Path) -> Callable[[list[str]], np.ndarray]:
    return sentence_transformer_encoder(MODEL, backend=backend, cache_path=cache)


@pytest.fixture
def quantisations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Each time the quantiser really runs (it still runs)."""
    calls: list[Path] = []

    def quantise(fp32: Path, into: Path) -> None:
        calls.append(into)
        REAL_QUANTISE(fp32, into)

    monkeypatch.setattr(onnx_int8, "_quantise", quantise)
    return calls


def test_the_int8_model_is_made_once_beside_the_export(
    model_cache: Path, tmp_path: Path, quantisations: list[Path]
) -> None:
    source = resolve_model_path(MODEL)
    fp32 = export_folder(source, model_cache)
    encoder("onnx", model_cache)(["make the fp32 export first"])
    cache = tmp_path / "models"
    cache.mkdir()
    (cache / fp32.name).symlink_to(fp32)  # the fp32 export, not made again
    (cache / f".{fp32.name}.lock").touch()
    # a crashed quantiser's leftovers are never trusted, and cleaned up
    target = export_folder(source, cache, variant="onnx-int8")
    (cache / f".{target.name}.partial-dead" / "onnx").mkdir(parents=True)
    (target / "onnx").mkdir(parents=True)
    (target / "onnx" / "model.onnx").write_bytes(b"half a model")

    assert onnx_int8.ensure_int8_export(source, cache) == target
    assert onnx_int8.ensure_int8_export(source, cache) == target
    assert quantisations == [quantisations[0]]
    assert len(quantisations) == 1
    assert (target / "tokenizer.json").is_file()
    assert (target / MARKER).is_file()
    assert not [p for p in cache.iterdir() if ".partial-" in p.name]
    size = (target / "onnx" / "model.onnx").stat().st_size
    assert size < (fp32 / "onnx" / "model.onnx").stat().st_size / 3  # int8 weights: a quarter
    fingerprint = {
        **source_fingerprint(source),
        "quantisation": {**onnx_int8.QUANTISATION, "onnxruntime": "0.0.1"},
    }
    assert not is_trusted(target, fingerprint)  # another onnxruntime quantises again


def test_int8_vectors_are_unit_rows_close_to_fp32(model_cache: Path) -> None:
    int8 = encoder("onnx-int8", model_cache)(SENTENCES)
    fp32 = encoder("onnx", model_cache)(SENTENCES)
    assert int8.dtype == np.float32
    assert int8.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(int8 * fp32, axis=1)
    assert cosines.min() > 0.95, float(cosines.min())
    assert not np.allclose(int8, fp32, atol=1e-4)  # really another model's vectors


async def _open(backend: Backend, tmp_path: Path, model_cache: Path) -> MemoryEngine:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{tmp_path / backend}.db",
        chroma_path=tmp_path / f"chroma-{backend}",
        chroma_shards=1,
        embedding_backend=backend,
        model_cache_path=model_cache,
    )
    return await open_engine(settings, embedder=Embedder(encoder(backend, model_cache)))


@pytest.fixture
async def fp32_and_int8(tmp_path: Path, model_cache: Path) -> AsyncIterator[list[MemoryEngine]]:
    opened = [await _open(backend, tmp_path, model_cache) for backend in ("onnx", "onnx-int8")]
    yield opened
    for engine in opened:
        await engine.aclose()


@pytest.mark.parametrize("name", list(SETS))
async def test_int8_loses_at_most_one_question_per_set(
    name: str, fp32_and_int8: list[MemoryEngine], capsys: pytest.CaptureFixture[str]
) -> None:
    notes, questions = SETS[name]
    found: dict[tuple[str, str], list[int | None]] = {}
    for engine in fp32_and_int8:
        ids = await load(engine, 1, notes)
        for mode in ("semantic", "hybrid"):
            key = (engine.stores.settings.embedding_backend, mode)
            found[key] = await ranks(engine, 1, questions, ids, mode)
    for mode in ("semantic", "hybrid"):
        fp32, int8 = score(found["onnx", mode]), score(found["onnx-int8", mode])
        with capsys.disabled():
            print(
                f"\n[int8 gate: {name} {mode}, n={fp32.n}] fp32 r@1={fp32.at1:.3f} "
                f"r@5={fp32.at5:.3f}; int8 r@1={int8.at1:.3f} r@5={int8.at5:.3f}"
            )
        assert round((fp32.at1 - int8.at1) * fp32.n) <= 1, (mode, fp32, int8)
        assert round((fp32.at5 - int8.at5) * fp32.n) <= 1, (mode, fp32, int8)
