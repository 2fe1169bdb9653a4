"""Both embedding backends, offline from the packaged model: the ONNX export and its vectors."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.settings import Settings
from engine.stores import build_embedder
from storage import onnx_model
from storage.embedder import (
    Backend,
    load_model,
    resolve_model_path,
    sentence_transformer_encoder,
)
from storage.onnx_model import MARKER, ensure_onnx_export, export_folder, is_trusted

MODEL = "all-MiniLM-L6-v2"
SENTENCES = [
    "I parked the car on level 3, spot B12.",
    "Dentist appointment on Tuesday at 9:30",
    "The wifi password at grandma's is sunflower42",
    "Remember to water the tomatoes every other day",
    "Mia's birthday is on the 14th of March; she likes Lego",
    "ok",
    "Die Schlüssel liegen unter der Fußmatte.",
    "Le code de la porte d'entrée est 4815.",
    "La reunión con el contador es el viernes a las diez.",
    "Купить молоко, хлеб и яйца по дороге домой",
    "東京駅の八重洲口で待ち合わせ",
    "明天下午三点开会",
    "비밀번호는 냉장고 옆 서랍에 있어요",
    "مفاتيح السيارة في الدرج العلوي",
    "📌 pick up the 🎂 before 6pm!!!",
    "https://example.com/recipes/lasagna?servings=4",
    "   lots   of    spaces\tand\ttabs\n and a newline  ",
    "SELECT * FROM memories WHERE user_id = 42;",
    "A very long note about the garden. " * 40,  # past the 256-token window: truncated
    "x",
]
REAL_EXPORT = onnx_model._export


@dataclass
class Export:
    """The module's one shared export and how often the exporter ran for it."""

    cache: Path
    folder: Path
    exports: list[Path] = field(default_factory=list)


def counting_exports(patch: pytest.MonkeyPatch) -> list[Path]:
    """Patch the exporter so the test can see each time it really runs."""
    calls: list[Path] = []

    def export(source: Path, into: Path) -> None:
        calls.append(into)
        REAL_EXPORT(source, into)

    patch.setattr(onnx_model, "_export", export)
    return calls


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Export]:
    """One first start of the ONNX backend in an empty cache, shared by the module."""
    cache = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        calls = counting_exports(patch)
        folder = ensure_onnx_export(resolve_model_path(MODEL), cache)
        yield Export(cache, folder, calls)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the network (a hub download) fails the test."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access while loading the model: {address}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def encoder(backend: Backend, cache: Path) -> Callable[[list[str]], np.ndarray]:
    return sentence_transformer_encoder(MODEL, backend=backend, cache_path=cache)


def assert_unit_rows(matrix: np.ndarray, rows: int) -> None:
    assert matrix.dtype == np.float32
    assert matrix.shape == (rows, 384)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


def test_torch_backend_loads_offline_and_writes_no_cache(offline: None, tmp_path: Path) -> None:
    vectors = encoder("torch", tmp_path / "models")(SENTENCES[:3])
    assert_unit_rows(vectors, 3)
    assert not (tmp_path / "models").exists()


def test_first_start_exports_once_into_the_cache(exported: Export) -> None:
    assert len(exported.exports) == 1
    assert exported.folder == export_folder(resolve_model_path(MODEL), exported.cache)
    assert exported.folder.parent == exported.cache.resolve()
    assert (exported.folder / "onnx" / "model.onnx").is_file()
    assert (exported.folder / MARKER).is_file()
    assert [p.name for p in exported.cache.iterdir() if ".partial-" in p.name] == []


def test_later_starts_reuse_the_export(
    exported: Export, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_export(source: Path, into: Path) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_model, "_export", no_export)
    marker_before = (exported.folder / MARKER).stat()
    assert ensure_onnx_export(resolve_model_path(MODEL), exported.cache) == exported.folder
    vectors = encoder("onnx", exported.cache)(SENTENCES[:3])
    assert_unit_rows(vectors, 3)
    assert (exported.folder / MARKER).stat().st_mtime_ns == marker_before.st_mtime_ns


def test_a_crashed_export_is_never_trusted(
    tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = resolve_model_path(MODEL)
    target = export_folder(source, tmp_path)

    def crash(source: Path, into: Path) -> None:
        (into / "onnx").mkdir()
        (into / "onnx" / "model.onnx").write_bytes(b"half a model")
        raise RuntimeError("died mid-export")

    monkeypatch.setattr(onnx_model, "_export", crash)
    with pytest.raises(RuntimeError, match="mid-export"):
        ensure_onnx_export(source, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{target.name}.lock"]
    # A SIGKILL skips the clean-up: a partial folder remains, and maybe a half final folder.
    (tmp_path / f".{target.name}.partial-dead" / "onnx").mkdir(parents=True)
    (target / "onnx").mkdir(parents=True)
    (target / "onnx" / "model.onnx").write_bytes(b"half a model")

    calls = counting_exports(monkeypatch)
    assert ensure_onnx_export(source, tmp_path) == target
    assert len(calls) == 1
    assert is_trusted(target, onnx_model.source_fingerprint(source))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{target.name}.lock", target.name]


def test_simultaneous_first_starts_export_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_exports(monkeypatch)
    source = resolve_model_path(MODEL)
    with ThreadPoolExecutor(max_workers=3) as pool:  # each opens its own lock file handle
        folders = list(pool.map(lambda _: ensure_onnx_export(source, tmp_path), range(3)))
    assert folders == [export_folder(source, tmp_path)] * 3
    assert len(calls) == 1


def test_an_export_of_another_model_or_exporter_is_stale(exported: Export, tmp_path: Path) -> None:
    fingerprint = onnx_model.source_fingerprint(resolve_model_path(MODEL))
    copy = Path(shutil.copytree(exported.folder, tmp_path / "copy"))
    assert is_trusted(copy, fingerprint)
    recorded = json.loads((copy / MARKER).read_text())
    recorded["versions"]["sentence-transformers"] = "0.0.1"
    (copy / MARKER).write_text(json.dumps(recorded))
    assert not is_trusted(copy, fingerprint)
    (copy / MARKER).unlink()
    assert not is_trusted(copy, fingerprint)


def test_onnx_vectors_match_torch(exported: Export) -> None:
    onnx_vectors = encoder("onnx", exported.cache)(SENTENCES)
    torch_vectors = encoder("torch", exported.cache)(SENTENCES)
    assert_unit_rows(onnx_vectors, len(SENTENCES))
    assert_unit_rows(torch_vectors, len(SENTENCES))
    cosines = np.sum(onnx_vectors * torch_vectors, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.999, (SENTENCES[worst], float(cosines[worst]))


def test_one_text_and_a_batch_give_the_same_vector(exported: Export) -> None:
    encode = encoder("onnx", exported.cache)
    alone = encode([SENTENCES[9]])[0]
    padded = encode(SENTENCES)[9]  # padded to the longest text of the batch
    assert float(alone @ padded) >= 0.9999


def test_models_are_shared_per_model_backend_and_cache(exported: Export, tmp_path: Path) -> None:
    onnx = load_model(MODEL, backend="onnx", cache_path=exported.cache)
    assert load_model(MODEL, backend="onnx", cache_path=exported.cache) is onnx
    torch = load_model(MODEL, backend="torch", cache_path=exported.cache)
    assert torch is not onnx
    assert load_model(MODEL, backend="torch", cache_path=tmp_path) is torch


async def test_build_embedder_follows_the_settings(exported: Export) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, embedding_backend="onnx", model_cache_path=exported.cache
    )
    embedder = build_embedder(settings)
    try:
        vector = await embedder.embed(SENTENCES[0])
    finally:
        await embedder.aclose()
    expected = encoder("onnx", exported.cache)([SENTENCES[0]])[0]
    np.testing.assert_allclose(vector, expected, atol=1e-6)
    assert vector.dtype == np.float32


def test_an_unknown_backend_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="none of onnx-int8, onnx, torch"):
        encoder("tensorflow", Path("unused"))  # type: ignore[arg-type]
