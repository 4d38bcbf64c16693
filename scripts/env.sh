# Sourced by the other scripts: creates/updates the project's virtual environment and activates it.
# Idempotent. A torch already importable by python3 (e.g. a CUDA build) is kept; otherwise the CPU build
# torch==2.13.0 is installed. Set GAN_VENV to use another folder (default: .venv in the repo).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GAN_VENV:-$repo_root/.venv}"
python_bin="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating virtual environment $venv"
    "$python_bin" -m venv --system-site-packages "$venv"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"

if ! python -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing torch==2.13.0 (CPU build)"
    python -m pip install --quiet "torch==2.13.0"
fi

stamp="$venv/.installed-$(cat "$repo_root/pyproject.toml" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "[setup] installing the project and its dependencies"
    python -m pip install --quiet -e "$repo_root[test]"
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi
cd "$repo_root"
