"""Run inside a fresh venv holding memorybot without `[dev]`: prints one JSON report on stdout.

It imports every module of the shipped packages, checks that every module they import (lazy
imports in functions included) can be found and belongs to a declared dependency, and encodes
one text with the packaged model (ONNX backend, offline). Standard library only, besides what
it probes, so that it runs in that venv; `python probe.py PACKAGE...`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import json
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

DIST = "memorybot"
DEV_ONLY = ("pytest", "pytest_asyncio", "hypothesis", "mypy", "ruff")
SKIPPED = ".migrations"  # Alembic scripts: loaded by path from inside Alembic, not importable


def declared_distributions() -> set[str]:
    """The normalised names of memorybot's runtime requirements (extras such as dev left out)."""
    names = set()
    for requirement in importlib.metadata.requires(DIST) or []:
        if "extra ==" in requirement:
            continue
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match is not None, requirement
        names.add(normalise(match.group(0)))
    return names


def normalise(name: str) -> str:
    """A distribution name the way packaging compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_type_checking(node: ast.AST) -> bool:
    """True for an `if TYPE_CHECKING:` block (its imports never run)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST) -> set[str]:
    """Top-level names of every absolute import in `tree`, nested ones included."""
    names: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if is_type_checking(node):
            assert isinstance(node, ast.If)
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        pending.extend(ast.iter_child_nodes(node))
    return names


def import_everything(packages: list[str]) -> tuple[list[str], dict[str, str]]:
    """Import every module of `packages`; the names imported and the failures."""
    imported: list[str] = []
    failures: dict[str, str] = {}
    for top in packages:
        package = importlib.import_module(top)
        imported.append(top)
        for info in pkgutil.walk_packages(package.__path__, f"{top}."):
            if SKIPPED in info.name:
                continue
            try:
                importlib.import_module(info.name)
            except Exception as error:  # every failure is reported, not just the first
                failures[info.name] = f"{type(error).__name__}: {error}"
            else:
                imported.append(info.name)
    return imported, failures


def third_party_imports(packages: list[str]) -> set[str]:
    """Top-level names the installed sources of `packages` import, minus stdlib and themselves."""
    names: set[str] = set()
    for top in packages:
        origin = importlib.import_module(top).__file__
        assert origin is not None
        for source in Path(origin).parent.rglob("*.py"):
            names |= imported_names(ast.parse(source.read_text(), str(source)))
    return names - set(sys.stdlib_module_names) - set(packages) - {"__future__"}


def encode_one(cache: str) -> int:
    """The dimension of one vector from the packaged model, ONNX backend, exported into `cache`."""
    from storage.embedder import sentence_transformer_encoder

    encode = sentence_transformer_encoder(
        "all-MiniLM-L6-v2", backend="onnx", cache_path=Path(cache)
    )
    return int(encode(["my passport is in the blue drawer"]).shape[1])


def main(argv: list[str]) -> None:
    """Print the report for the packages named on the command line."""
    cache, packages = argv[0], argv[1:]
    imported, failures = import_everything(packages)
    owners = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    names = third_party_imports(packages)
    report: dict[str, Any] = {
        "locations": {top: importlib.import_module(top).__file__ for top in packages},
        "imported": imported,
        "failures": failures,
        "missing": sorted(n for n in names if importlib.util.find_spec(n) is None),
        "undeclared": sorted(
            n for n in names if not declared & {normalise(d) for d in owners.get(n, [])}
        ),
        "dev_present": sorted(n for n in DEV_ONLY if importlib.util.find_spec(n) is not None),
        "dimension": encode_one(cache),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
