#!/usr/bin/env bash
# Quick start #2: set up, then run lint, types and every test tier (SQLite and PostgreSQL,
# embedded and server Chroma, the real model), and the `dates` tests once more at each fixed
# instant of tests/tiers.py, in TEST_WORKERS processes (pytest-xdist; default 4, more than the
# two cores: most tests wait on subprocesses, sockets and timers).
#   ./scripts/test.sh            everything (what CI runs)
#   ./scripts/test.sh --quick    day to day: unit + integration tests not marked slow, SQLite only
# Extra arguments go to pytest (e.g. `-n 0` for one process, `-k name`, a path).
set -euo pipefail
cd "$(dirname "$0")/.."
tier=full
if [ "${1:-}" = "--quick" ]; then
  tier=quick
  shift
fi
./scripts/setup.sh
export HF_HUB_OFFLINE=1 ANONYMIZED_TELEMETRY=False
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if [ "$tier" = quick ]; then
  selection=(--db sqlite -m "not slow" tests/unit tests/integration)
else
  selection=(--all-dates)
fi
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${TEST_WORKERS:-4}" --maxschedchunk 1 \
  "${selection[@]}" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
