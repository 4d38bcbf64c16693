"""The network-pickle loader lives in training/checkpoint.py; `legacy.py` only re-exports it for users' scripts."""

import subprocess
import sys

import legacy
from tests.conftest import REPO_ROOT
from training import checkpoint

REPO = REPO_ROOT


def test_legacy_reexports_the_checkpoint_loader():
    for name in ("load_network_pkl", "load_network_pkl_from_url", "with_fp16_settings"):
        assert getattr(legacy, name) is getattr(checkpoint, name)


def test_project_code_loads_networks_without_the_top_level_legacy_module():
    code = "import sys, training.training_loop, generate, calc_metrics, train; print('legacy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
