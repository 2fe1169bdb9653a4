"""The model a vector generation was built with, recorded beside it, and checked at start.

Vectors of one model mean nothing to another (other dimension, other space), so a start with
a different model is refused until `memorybot reindex` rebuilds the index with it. The record
is the `vector_model` kv entry: name, dimension, backend and the generation it describes.

The name, the dimension and the precision count: the ONNX backend runs an export of the very
same weights as torch (tests/integration/test_embedding_backends.py holds their vectors equal),
so moving between those two keeps the index valid; the int8 backend (`onnx-int8`) makes other
vectors, so moving to or from it takes a reindex.

`EMBEDDING_BACKEND=auto` (the default) keeps an index on the backend it was built with, so an
upgrade never refuses to start; a new index, and `memorybot reindex`, get `NEW_INDEX_BACKEND`
if the model is the one int8 was measured on (all-MiniLM-L6-v2), else fp32 (`onnx`): another
model's int8 quality is unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import MemoryBotError
from engine.settings import Settings
from storage.embedder import KNOWN_NAMES, Backend, resolve_model_path
from storage.repositories.records import KeyValueRepository

MODEL_KEY = "vector_model"
# int8 passed the recall gate (tests/integration/test_int8_model.py): new indexes get it
NEW_INDEX_BACKEND: Backend = "onnx-int8"
CANONICAL = "all-MiniLM-L6-v2"
POOLING_MODES = (
    "pooling_mode_cls_token",
    "pooling_mode_mean_tokens",
    "pooling_mode_max_tokens",
    "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens",
    "pooling_mode_lasttoken",
)


@dataclass(frozen=True)
class ModelIdentity:
    """Which embedding model makes the vectors: its name, dimension and backend."""

    name: str
    dimension: int | None  # None: not known from the model's files
    backend: str

    @property
    def precision(self) -> str:
        """ "int8" for the quantised model, else "fp32" (onnx and torch: the same weights)."""
        return "int8" if self.backend == "onnx-int8" else "fp32"

    def describe(self) -> str:
        """e.g. `all-MiniLM-L6-v2 (384)`, or `all-MiniLM-L6-v2 (384, int8)`."""
        precision = ", int8" if self.precision == "int8" else ""
        return f"{self.name} ({self.dimension or '?'}{precision})"

    def makes_same_vectors(self, other: ModelIdentity) -> bool:
        """True when vectors of one are vectors of the other (onnx or torch does not count)."""
        unknown = self.dimension is None or other.dimension is None
        return (
            self.name == other.name
            and (unknown or self.dimension == other.dimension)
            and self.precision == other.precision
        )

    def record(self, generation: int) -> str:
        """The kv value recording this model for `generation`."""
        return json.dumps({**self.__dict__, "generation": generation}, sort_keys=True)


@dataclass(frozen=True)
class ModelStatus:
    """What `check` says about the model: the recorded one against this process's."""

    recorded: ModelIdentity | None
    current: ModelIdentity

    @property
    def mismatch(self) -> bool:
        return self.recorded is not None and not self.recorded.makes_same_vectors(self.current)

    @property
    def faster_backend(self) -> Backend | None:
        """The backend a reindex would move this index to, when it is faster."""
        return faster_backend(self.recorded or self.current)

    def as_dict(self) -> dict[str, Any]:
        recorded = None if self.recorded is None else self.recorded.__dict__
        return {
            "recorded": recorded,
            "current": self.current.__dict__,
            "mismatch": self.mismatch,
            "faster_backend": self.faster_backend,
        }


class IndexModelMismatch(MemoryBotError):
    """The vector index was built with another model; a start must not mix the two."""

    def __init__(self, recorded: ModelIdentity, current: ModelIdentity) -> None:
        super().__init__(
            f"the vector index was built with {recorded.describe()}; this start uses "
            f"{current.describe()} — run `memorybot reindex` to rebuild it"
        )
        self.recorded = recorded
        self.current = current


def backend_to_run(
    settings: Settings, recorded: ModelIdentity | None, *, has_vectors: bool, rebuild: bool
) -> Backend:
    """The backend this process runs: the one the settings name, or for `auto` the one the
    index was built with (`recorded`) — `NEW_INDEX_BACKEND` for a new index or a rebuild.

    An index with vectors but no record predates both the record and int8: it is fp32.
    """
    if settings.embedding_backend != "auto":
        return settings.embedding_backend
    if recorded is not None and not rebuild:
        return "onnx-int8" if recorded.precision == "int8" else "onnx"
    if has_vectors and not rebuild:
        return "onnx"
    return NEW_INDEX_BACKEND if canonical_name(settings) == CANONICAL else "onnx"


def faster_backend(current: ModelIdentity) -> Backend | None:
    """The backend `memorybot reindex` would move a fp32 index of the measured model to
    (`check` says so); None when it runs int8 already, or is another model."""
    if current.name != CANONICAL or current.precision == "int8":
        return None
    return NEW_INDEX_BACKEND


def canonical_name(settings: Settings) -> str:
    """The model's name: all-MiniLM-L6-v2 however the settings name it, a folder's own name."""
    folder = resolve_model_path(settings.embedding_model)
    name = settings.embedding_model
    if name in KNOWN_NAMES or _same_folder(folder, resolve_model_path(CANONICAL)):
        return CANONICAL
    if Path(name).expanduser().is_dir():
        return folder.resolve().name  # the folder's name: moving it elsewhere changes nothing
    return name


def model_identity(settings: Settings) -> ModelIdentity:
    """The model the settings name: canonical name, dimension (from its files), backend
    (`auto` read as for a new index; `open_stores` settles it first: see `backend_to_run`)."""
    folder = resolve_model_path(settings.embedding_model)
    backend = backend_to_run(settings, None, has_vectors=False, rebuild=False)
    return ModelIdentity(canonical_name(settings), model_dimension(folder), backend)


def model_dimension(folder: Path) -> int | None:
    """The size of the sentence vectors a sentence-transformers folder makes (no loading):
    the last Pooling or Dense module's output, else the transformer's hidden size."""
    try:
        return _modules_dimension(folder)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return int(json.loads((folder / "config.json").read_text())["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _modules_dimension(folder: Path) -> int:
    dimension: int | None = None
    for module in json.loads((folder / "modules.json").read_text()):
        kind, path = str(module.get("type", "")), folder / str(module.get("path", ""))
        if kind.endswith("Pooling"):
            config = json.loads((path / "config.json").read_text())
            modes = sum(bool(config.get(mode)) for mode in POOLING_MODES) or 1
            dimension = int(config["word_embedding_dimension"]) * modes
        elif kind.endswith("Dense"):
            dimension = int(json.loads((path / "config.json").read_text())["out_features"])
    if dimension is None:
        raise KeyError("no Pooling or Dense module")
    return dimension


async def recorded_model(kv: KeyValueRepository, generation: int) -> ModelIdentity | None:
    """The model recorded for `generation` (None: none recorded, or for another generation)."""
    raw = await kv.get(MODEL_KEY)
    if raw is None:
        return None
    data = json.loads(raw)
    if data.get("generation") != generation:
        return None  # a generation built before models were recorded: adopt
    return ModelIdentity(str(data["name"]), data.get("dimension"), str(data.get("backend")))


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
