#!/usr/bin/env bash
# The whole GPU check in one prepared run: build the CUDA ops, run the CUDA tests, measure the ops and training
# speed, and train paper256 for about two minutes with ADA and AdaptiveMix, then generate from the snapshot.
# Aim: under 8 minutes on one H100/H200. Prints every figure; logs land in $OUT (device tool) or ./gpu-check.
#
#   bash benchmarks/gpu_check.sh             # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --dry-run   # the same steps on the CPU with tiny sizes (checks the script)
#
# Uses `python3` (or $PYTHON) with the repository on PYTHONPATH, so a machine's own CUDA torch serves; the
# project's dependencies must be importable (torch, numpy, click, pillow, scipy, requests, psutil, pytest).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
py="${PYTHON:-python3}"
out="${OUT:-gpu-check}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

dry_run=0
[ "${1:-}" = "--dry-run" ] && dry_run=1
if [ "$dry_run" = 1 ]; then
    device=cpu; bench_configs=tiny32; bench_iters=1; bench_warmup=0; bench_fp16=on; train_cfg=tiny; res=32; kimg=0.05; tick=0.025
else
    device=cuda; bench_configs=ref32,auto64,paper256; bench_iters=16; bench_warmup=2; bench_fp16=both; train_cfg=paper256; res=256; kimg=12; tick=4
fi
failures=()
step() {  # step NAME TIMEOUT_S CMD... : runs CMD with a time limit, logs it, records a failure without stopping.
    local name=$1 limit=$2; shift 2
    echo; echo "=== $name ($(date +%T))"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
    [ "$rc" = 0 ] || failures+=("$name (exit $rc)")
}

if [ "$dry_run" = 0 ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
fi
"$py" -c "import torch; print('torch', torch.__version__, '| cuda', torch.version.cuda, '|',
          torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"

# 1. Build both plugins once (a build failure prints its log path and the ops fall back to the reference path).
step build-ops 300 "$py" - "$device" <<'EOF'
import sys, torch
from torch_utils.ops import _plugins
x = torch.zeros(1, device=sys.argv[1])
for name in ("upfirdn2d", "bias_act"):
    plugin = _plugins.cuda_plugin("cuda", x, name)
    print(f"{name}: {'compiled plugin loaded' if plugin is not None else 'reference path (no plugin)'}")
    if sys.argv[1] == "cuda" and plugin is None:
        sys.exit(1)
EOF

# 2. Correctness: every CUDA-marked test (ops forward/grad/grad-of-grad in fp16 and fp32, fp16 networks vs fp32),
#    then the reference-reproducing tests (they run on the CPU path of this machine's torch).
step cuda-tests 240 "$py" -m pytest -q -p no:cacheprovider -m cuda tests/
step reference-tests 180 "$py" -m pytest -q -p no:cacheprovider tests/ops/test_ops_reference.py tests/networks/test_networks_parity.py \
    tests/training/test_loss_reference.py tests/training/test_augment_reference.py tests/metrics/test_metrics_inception.py

# 3. Speed: the ops (plugin vs reference) and training (s/kimg, images/s, peak memory; fp16 on and off).
if [ "$dry_run" = 1 ]; then
    step bench-ops 120 "$py" benchmarks/ops.py --device "$device" --quick --iters 1 --no-compile
else
    step bench-ops 120 "$py" benchmarks/ops.py --device "$device" --iters 20 --no-compile
fi
step bench-train 240 "$py" benchmarks/train.py --device="$device" --iters="$bench_iters" --warmup="$bench_warmup" \
    --configs="$bench_configs" --fp16="$bench_fp16"

# 4. A short real run: synthetic smooth images, the preset with ADA and AdaptiveMix, then samples from the snapshot.
work="$(mktemp -d)"
"$py" -c "import sys; from pathlib import Path; from tests.conftest import make_image_zip; \
make_image_zip(Path(sys.argv[1]), num_images=256, resolution=int(sys.argv[2]), num_classes=0)" "$work/data.zip" "$res"
step train-run 200 "$py" train.py --outdir="$work/runs" --data="$work/data.zip" --cfg="$train_cfg" --gpus=1 --device="$device" \
    --kimg="$kimg" --tick="$tick" --snap=1 --aug=ada --adaptivemix=1 --metrics=none
snapshot="$(ls "$work"/runs/*/network-snapshot-*.pkl 2>/dev/null | sort | tail -n 1)"
if [ -n "$snapshot" ]; then
    grep -h '"Loss/' "$work"/runs/*/stats.jsonl | tail -n 1 | "$py" -c "import json, math, sys
stats = json.loads(sys.stdin.read())
bad = [k for k, v in stats.items() if k.startswith('Loss/') and not math.isfinite(v.get('mean', 0.0))]
print('last tick: all losses finite' if not bad else f'NON-FINITE: {bad}'); sys.exit(1 if bad else 0)" \
        || failures+=("train-run (non-finite loss)")
    step generate 120 "$py" generate.py --network="$snapshot" --seeds=0-7 --outdir="$out/samples" --device="$device"
    cp "$work"/runs/*/log.txt "$out/train-log.txt" 2>/dev/null
else
    failures+=("train-run (no snapshot written)")
fi
rm -rf "$work"

echo
if [ ${#failures[@]} = 0 ]; then
    echo "GPU check: every step passed"
else
    echo "GPU check: failed steps: ${failures[*]}"
    exit 1
fi
