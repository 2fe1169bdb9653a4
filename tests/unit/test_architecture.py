"""The shape the code promises: one writer, one dependency direction, no service mixins."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "storage", "jobs", "bot")


def sources(*packages: str) -> list[Path]:
    return [
        path
        for package in packages
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def test_only_the_unit_of_work_commits() -> None:
    committing = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources(*PACKAGES)
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"commit\(\)", line)
    ]
    assert committing, "the unit of work commits somewhere"
    assert {entry.split(":")[0] for entry in committing} == {"engine/uow.py"}, committing


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_dependencies_point_bot_to_engine_to_storage() -> None:
    allowed = {
        "bot": {"bot", "engine", "jobs", "botapi_emulator"},
        "jobs": {"jobs", "engine"},
        "engine": {"engine", "storage"},
        "storage": {"storage"},
    }
    wrong = []
    for package, may_use in allowed.items():
        for path in sources(package):
            ours = imported_packages(path) & {*PACKAGES, "botapi_emulator"}
            if ours - may_use:
                wrong.append(f"{path.relative_to(ROOT)} imports {sorted(ours - may_use)}")
    assert wrong == []


def test_no_engine_service_inherits_from_another() -> None:
    engine_classes: dict[str, list[str]] = {}
    for path in sources("engine"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                engine_classes[node.name] = bases
    services = {name for name in engine_classes if name.endswith(("Service", "Writes", "Reads"))}
    services |= {"IndexCare", "Stores"}
    inheriting = {name: bases for name, bases in engine_classes.items() if set(bases) & services}
    assert inheriting == {}


def test_no_method_is_named_after_a_builtin() -> None:
    builtins_used = {"list", "dict", "set", "type", "id", "filter", "map", "input"}
    found = [
        f"{path.relative_to(ROOT)}:{node.name}"
        for path in sources("engine")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in builtins_used
    ]
    assert found == []
