"""A clean install: memorybot without `[dev]` in a fresh venv runs, imports and checks a store.

The venv is built once per run (torch's CPU build first, as scripts/setup.sh does; any
other torch pulls CUDA wheels), from a copy of the sources so the checkout gets no `build/`.
Bytecode is not compiled at install time (`--no-compile`): it saves about a third of the pip
time, and the modules the tests import are compiled when imported.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import PG_ADMIN

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("probe.py")
TORCH = "torch==2.13.0"
PIP_TIMEOUT_S = 1800


def shipped_packages() -> list[str]:
    """The top-level packages pyproject.toml ships (`bot*` → `bot`)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return [pattern.rstrip("*") for pattern in patterns]


def run(
    argv: list[str | Path], *, timeout: float, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run `argv`, capturing its output as text."""
    return subprocess.run(
        [str(arg) for arg in argv], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def ensure_ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """`done`, or a failure that shows what it printed."""
    assert done.returncode == 0, (
        f"{done.args}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


def clean_env(home: Path, **settings: str) -> dict[str, str]:
    """No token, no `.env`, nothing from this test session: only what the test passes."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
        **settings,
    }


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding torch's CPU build and memorybot (no extras, not editable).

    Built once per run: under xdist the workers share it (the first builds it, under a lock,
    while the others wait), since their tests are handed out to any of them.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = tmp_path_factory.getbasetemp().parent / "clean_install"
        base.mkdir(exist_ok=True)
    else:
        base = tmp_path_factory.mktemp("clean_install")
    with (base / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        target = base / "venv"
        if not (base / "built").exists():
            build_venv(base, target)
            (base / "built").touch()
        fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def build_venv(base: Path, target: Path) -> None:
    """Copy the shipped sources into `base`/src and install them into a new venv `target`."""
    source = base / "src"
    shutil.rmtree(source, ignore_errors=True)  # a build that failed before
    shutil.rmtree(target, ignore_errors=True)
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in shipped_packages():
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    ensure_ok(run([sys.executable, "-m", "venv", target], timeout=300))
    pip: list[str | Path] = [
        target / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
    ]
    # The pip a new venv brings (23.x here) backtracks for 7 minutes over this dependency tree;
    # a current one resolves it in ~15 s.
    ensure_ok(run([*pip, "--upgrade", "pip"], timeout=PIP_TIMEOUT_S))
    ensure_ok(run([*pip, TORCH], timeout=PIP_TIMEOUT_S))
    ensure_ok(run([*pip, source], timeout=PIP_TIMEOUT_S, cwd=base))


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nobody has touched: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"memorybot_install_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0]
            + "/"
            + name
        )
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def pg_admin(sql: str) -> None:
    """Run one statement on the PostgreSQL maintenance database."""
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def test_memorybot_help_runs(venv: Path, tmp_path: Path) -> None:
    done = ensure_ok(
        run(
            [venv / "bin" / "memorybot", "--help"],
            timeout=120,
            cwd=tmp_path,
            env=clean_env(tmp_path),
        )
    )
    for command in ("run", "console", "check", "reindex", "db"):
        assert command in done.stdout


def test_the_chroma_server_command_is_installed(venv: Path, tmp_path: Path) -> None:
    """compose.yaml runs `chroma run` from the bot's image: the package must bring it."""
    done = run(
        [venv / "bin" / "chroma", "run", "--help"],
        timeout=120,
        cwd=tmp_path,
        env=clean_env(tmp_path),
    )
    ensure_ok(done)
    for option in ("--path", "--host", "--port"):
        assert option in done.stdout


def test_memorybot_check_on_a_fresh_store_logs_json(
    venv: Path, fresh_database: str, tmp_path: Path
) -> None:
    env = clean_env(
        tmp_path,
        DATABASE_URL=fresh_database,
        CHROMA_PATH=str(tmp_path / "chroma"),
        MODEL_CACHE_PATH=str(tmp_path / "models"),
        LOG_FORMAT="json",
    )
    memorybot = venv / "bin" / "memorybot"
    plain = ensure_ok(run([memorybot, "check"], timeout=300, cwd=tmp_path, env=env))
    assert "ok: SQL and Chroma agree" in plain.stdout
    lines = plain.stderr.splitlines()
    assert lines, "the engine logs at INFO when it opens"
    for line in lines:  # every line one JSON object: nothing else reaches stderr
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)
    assert any(json.loads(line)["message"].startswith("engine open") for line in lines)
    report = json.loads(
        ensure_ok(run([memorybot, "check", "--json"], timeout=300, cwd=tmp_path, env=env)).stdout
    )
    assert report["drift"] is False
    assert (report["sql_count"], report["vector_count"]) == (0, 0)
    assert report["model"]["mismatch"] is False


def test_every_module_imports_and_every_import_is_declared(venv: Path, tmp_path: Path) -> None:
    packages = shipped_packages()
    done = ensure_ok(
        run(
            [venv / "bin" / "python", PROBE, tmp_path / "models", *packages],
            timeout=900,
            cwd=tmp_path,
            env=clean_env(tmp_path),
        )
    )
    report = json.loads(done.stdout.splitlines()[-1])
    for top, location in report["locations"].items():  # the installed copy, not the checkout
        assert Path(location).is_relative_to(venv), (top, location)
    assert report["failures"] == {}
    assert len(report["imported"]) > 50
    assert {"bot.cli", "bot.webhook", "engine.app", "storage.vectors", "jobs.scheduler"} <= set(
        report["imported"]
    )
    assert report["missing"] == []
    assert report["undeclared"] == []
    assert report["dev_present"] == []
    assert report["dimension"] == 384
    assert os.listdir(tmp_path / "models"), "the ONNX export was made from the packaged model"
