#!/usr/bin/env bash
# Runs the test suite (sets up .venv first). Extra arguments go to pytest, e.g. `bash scripts/test.sh -k ops`.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m pytest -q "$@"
