#!/usr/bin/env bash
# Runs the linter, then the test suite (sets up .venv first). Extra arguments go to pytest, e.g.
# `bash scripts/test.sh -k ops`; `--fast` (first argument) skips the tests marked `slow` (whole training runs,
# subprocess launches), for a few-minute check while editing; CI runs everything.
# The lint rules are in pyproject.toml ([tool.ruff]); `ruff check --fix` fixes many.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ruff check .
ruff format --check .
if [ "${1:-}" = "--fast" ]; then
  shift
  python -m pytest -q -m "not slow" "$@"
else
  python -m pytest -q "$@"
fi
