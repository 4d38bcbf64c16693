#!/usr/bin/env bash
# Runs the linter, then the test suite (sets up .venv first). Extra arguments go to pytest, e.g.
# `bash scripts/test.sh -k ops`. The lint rules are in pyproject.toml ([tool.ruff]); `ruff check --fix` fixes many.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ruff check .
python -m pytest -q "$@"
