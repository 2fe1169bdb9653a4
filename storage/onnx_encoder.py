"""The ONNX export of a sentence-transformers model, run with onnxruntime and tokenizers only.

What `SentenceTransformer(folder, backend="onnx").encode(..., normalize_embeddings=True)` does
for a mean-pooling model, without importing torch, transformers or sentence-transformers:
tokenise (truncating at the model's max_seq_length), run the ONNX graph, average the token
vectors under the attention mask, L2-normalise. The vectors are the same (tests hold them
within 1e-5), so an index built through sentence-transformers stays valid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MAX_LENGTH = 512


class UnsupportedModel(ValueError):
    """The export pools in another way than the mean of its token vectors."""


class OnnxEncoder:
    """Encodes texts with one onnxruntime session over `<export>/onnx/model.onnx`."""

    def __init__(self, export: Path, *, session_options: Any = None) -> None:
        import onnxruntime  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        pooling = _read_json(export / "1_Pooling" / "config.json")
        if pooling.get("pooling_mode", "mean") != "mean" and not pooling.get(
            "pooling_mode_mean_tokens", False
        ):
            raise UnsupportedModel(f"{export}: only mean pooling is supported, not {pooling}")
        self.max_length = _max_length(export)
        self.tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.no_padding()
        self.session = onnxruntime.InferenceSession(
            str(export / "onnx" / "model.onnx"),
            sess_options=session_options,
            providers=["CPUExecutionProvider"],
        )
        self.inputs = {entry.name for entry in self.session.get_inputs()}

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 rows, one per text, in the order given.

        The texts run in batches of similar length (`_buckets`): little padding, so less
        work, and with int8 no long neighbour that moves a short row's quantisation (its
        activations are scaled per batch).
        """
        if not texts:
            return np.zeros((0, self.dimension()), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        rows = np.zeros((len(texts), self.dimension()), dtype=np.float32)
        for picked in _buckets([len(e.ids) for e in encodings], batch_size):
            rows[picked] = self._batch([encodings[i] for i in picked])
        return rows

    def dimension(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def _batch(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            size = len(encoding.ids)
            ids[row, :size] = encoding.ids
            mask[row, :size] = encoding.attention_mask
            types[row, :size] = encoding.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (tokens,) = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[:1]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


def _buckets(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indexes of `lengths` in batches of at most `batch_size`, by length, where the longest
    of a batch is at most twice its shortest (plus a few tokens)."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        last = batches[-1] if batches else None
        if last and len(last) < batch_size and lengths[i] <= 2 * lengths[last[0]] + 8:
            last.append(i)
        else:
            batches.append([i])
    return batches


def _max_length(export: Path) -> int:
    """sentence-transformers' max_seq_length, else the tokenizer's model_max_length."""
    for name, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        value = _read_json(export / name).get(key)
        if isinstance(value, int) and 0 < value < 100_000:
            return value
    return DEFAULT_MAX_LENGTH


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
