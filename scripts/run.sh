#!/usr/bin/env bash
# Quick start #1: set up, then run the bot (`./scripts/run.sh console` chats in the terminal).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export HF_HUB_OFFLINE=1
[ $# -gt 0 ] || set -- run
exec .venv/bin/memorybot "$@"
