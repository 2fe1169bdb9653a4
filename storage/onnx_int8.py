"""The int8 model: the fp32 ONNX export with its weights quantised, made once like the export.

`onnxruntime.quantization.quantize_dynamic` stores the MatMul weights as int8, one scale per
output channel (`per_channel`), in 7 bits (`reduce_range`: no int16 overflow in the AVX2
kernels of CPUs without VNNI); activations are quantised per call. Measured on the recall
set: it ranks as well as fp32 (tests/integration/test_int8_model.py holds it to that), and
its vectors differ a little (cosine to fp32 ≥ ~0.98), so they are another model's vectors:
an index built with one is not queried with the other.

Quantising needs the `onnx` package; like the export it runs in a child process, so the bot's
own process only ever loads the finished file.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from storage.onnx_model import (
    MARKER,
    ensure_onnx_export,
    export_folder,
    installed_version,
    made_once,
    run_in_child,
    source_fingerprint,
)

INT8 = "onnx-int8"
QUANTISATION: dict[str, Any] = {
    "method": "quantize_dynamic",
    "weight_type": "QInt8",
    "per_channel": True,
    "reduce_range": True,
}


def ensure_int8_export(source: Path, cache_path: Path) -> Path:
    """The folder of the int8 model of `source` (made from its fp32 export the first time)."""
    fp32 = ensure_onnx_export(source, cache_path)
    fingerprint = {
        **source_fingerprint(source),
        "quantisation": {**QUANTISATION, "onnxruntime": installed_version("onnxruntime")},
    }
    return made_once(
        export_folder(source, cache_path, variant=INT8),
        fingerprint,
        lambda into: _quantise(fp32, into),
    )


def _quantise(fp32: Path, into: Path) -> None:
    """Run `quantise_here` in a child process (it imports onnx; the bot never does)."""
    run_in_child("storage.onnx_int8", fp32, into, what=f"the int8 quantisation of {fp32}")


def quantise_here(fp32: Path, into: Path) -> None:
    """Copy the export's tokenizer and configs into `into` and quantise its graph there."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

    for item in fp32.iterdir():
        if item.name in (MARKER, "onnx"):
            continue
        copy = shutil.copytree if item.is_dir() else shutil.copy2
        copy(item, into / item.name)
    (into / "onnx").mkdir()
    quantize_dynamic(
        str(fp32 / "onnx" / "model.onnx"),
        str(into / "onnx" / "model.onnx"),
        weight_type=QuantType.QInt8,
        per_channel=QUANTISATION["per_channel"],
        reduce_range=QUANTISATION["reduce_range"],
    )
    into.chmod(0o755)  # mkdtemp made it private; the model itself is nothing secret


if __name__ == "__main__":  # `python -m storage.onnx_int8 FP32_EXPORT INTO`: what _quantise runs
    quantise_here(Path(sys.argv[1]), Path(sys.argv[2]))
