"""How long the test tiers take: `./scripts/test.sh` (everything, as CI runs it) on a fresh
clone of HEAD, then `./scripts/test.sh --quick` in that clone (its .venv and mypy cache warm,
as day to day).

Wall time and the CPU time of everything the tier started (user + system); the tests counted
from pytest's summary line. Run it on an idle machine: the suite itself uses both cores.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Log, Row, Section, command_line, parser_for, replace_section, warn_if_busy

TITLE = "Test tiers (bench/test_tiers.py)"
ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {"full": 15 * 60, "quick": 3 * 60}
log = Log("test_tiers")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tier(clone: Path, tier: str, workers: int, output: Path) -> dict[str, Any]:
    """Run one tier in `clone`; its output goes to `output`."""
    argv = ["./scripts/test.sh", *(["--quick"] if tier == "quick" else [])]
    env = {**os.environ, "CI": "true", "TEST_WORKERS": str(workers)}
    cpu, start = children_cpu_s(), time.monotonic()
    with output.open("w") as sink:
        done = subprocess.run(
            argv, cwd=clone, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink
        )
    wall, cpu = time.monotonic() - start, children_cpu_s() - cpu
    counts: dict[str, int] = {}  # summed over pytest's summary lines (the full tier has two)
    for line in output.read_text().splitlines():
        if " in " in line and ("passed" in line or "failed" in line):
            for value, key in re.findall(r"(\d+) (passed|failed|errors?)", line):
                counts[key] = counts.get(key, 0) + int(value)
    log(f"{tier}: exit {done.returncode}, {wall:.0f} s wall, {cpu:.0f} s CPU, {counts}")
    return {"tier": tier, "exit": done.returncode, "wall_s": wall, "cpu_s": cpu, "counts": counts}


def section(results: list[dict[str, Any]], workers: int, argv: list[str]) -> Section:
    rows = []
    for r in results:
        target = TARGETS_S[r["tier"]]
        passed = r["counts"].get("passed", 0)
        ok = r["exit"] == 0 and r["wall_s"] <= target
        rows += [
            Row(
                f"{r['tier']}: wall time (exit {r['exit']}, {passed} passed)",
                f"{r['wall_s'] / 60:.1f} min ({r['wall_s']:.0f} s)",
                f"≤ {target // 60} min, green",
                ok,
            ),
            Row(f"{r['tier']}: CPU time (user + system)", f"{r['cpu_s'] / 60:.1f} min"),
        ]
    return Section(
        title=TITLE,
        command=command_line("bench.test_tiers", argv),
        facts=[
            "full: `./scripts/test.sh` on a fresh clone of HEAD (a new .venv, a cold mypy cache:"
            " what CI runs), then quick: `./scripts/test.sh --quick` in the same clone",
            f"TEST_WORKERS={workers} (pytest-xdist processes)",
        ],
        rows=rows,
    )


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tier", choices=["both", "full", "quick"], default="both")
    args = parser.parse_args()
    warn_if_busy(log)
    tiers = ["full", "quick"] if args.tier == "both" else [args.tier]
    with tempfile.TemporaryDirectory(prefix="memorybot-tiers-") as scratch:
        clone = Path(scratch) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        results = [
            run_tier(clone, tier, args.workers, Path(scratch) / f"{tier}.log") for tier in tiers
        ]
        for r in results:
            if r["exit"] != 0:
                tail = (Path(scratch) / f"{r['tier']}.log").read_text()[-5000:]
                log(f"{r['tier']} failed; the end of its output:\n{tail}")
    print(json.dumps(results))
    replace_section(args.out, section(results, args.workers, sys.argv[1:]))


if __name__ == "__main__":
    main()
