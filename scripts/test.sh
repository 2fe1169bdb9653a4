#!/usr/bin/env bash
# Quick start #2: set up, then run lint, types and every test tier (SQLite and PostgreSQL,
# embedded and server Chroma, the real model), and the `dates` tests once more at each fixed
# instant of tests/tiers.py, in TEST_WORKERS processes (pytest-xdist; default 4, more than the
# two cores: most tests wait on subprocesses, sockets and timers); tests marked `exclusive`
# (they restart PostgreSQL) run alone afterwards.
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
workers=${TEST_WORKERS:-4}
run_pytest() {
  set +e
  .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
  status=$?
  set -e
}
if [ "$tier" = quick ]; then
  run_pytest -n "$workers" --maxschedchunk 1 --db sqlite -m "not slow" tests/unit \
    tests/integration "$@"
else
  run_pytest -n "$workers" --maxschedchunk 1 --all-dates -m "not exclusive" "$@"
  parallel=$status
  if [ "$parallel" -eq 0 ] || [ "$parallel" -eq 5 ]; then
    # Tests that restart a shared service (PostgreSQL) run alone, after the rest.
    run_pytest -n 0 --all-dates -m exclusive "$@"
    if [ "$status" -eq 5 ] && [ "$parallel" -eq 0 ]; then
      status=0 # the arguments selected no exclusive test
    fi
  else
    status=$parallel
  fi
fi
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
