#!/usr/bin/env bash
# The main job on a built-in default, from nothing: install, make a Fashion-MNIST training zip, train a small
# StyleGAN2 with AdaptiveMix for about ten minutes on a 2-core CPU (less on a GPU), sample a grid of images,
# compute FID/KID with a domain detector trained on the same data (works offline), draw the run's curves
# (progress.png). Idempotent: the dataset and detector are reused; each call starts a new numbered run in
# runs/demo. Set DEMO_KIMG to train longer or shorter (default 30 kimg; docs/performance.md has the FID reached
# over time).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -c "import matplotlib" 2>/dev/null || python -m pip install --quiet -e ".[plots]"  # For progress.png.
kimg="${DEMO_KIMG:-30}"
fmnist=/usr/share/datasets/fashion-mnist
data=datasets/fashion-mnist-32x32.zip
detector=datasets/fashion-mnist-detector.pt

if [ ! -f "$fmnist/train-images-idx3-ubyte.gz" ]; then
    echo "[demo] installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
mkdir -p datasets
if [ ! -f "$data" ]; then
    echo "[demo] converting 10,000 Fashion-MNIST images to $data (28x28 padded to 32x32)"
    python dataset_tool.py --source="$fmnist/train-images-idx3-ubyte.gz" --dest="$data" --max-images=10000
fi
if [ ! -f "$detector" ]; then
    echo "[demo] training a domain detector for the metrics -> $detector"
    python -m metrics.domain_detector --data="$data" --out="$detector"
fi

echo "[demo] training for $kimg kimg with AdaptiveMix (--cfg=tiny)"
python train.py --outdir=runs/demo --data="$data" --cfg=tiny --kimg="$kimg" --snap=10 --adaptivemix=1 --aug=ada \
    --metrics=fid50k_full,conf10k --metric-detector="$detector" --metric-images=2000 --workers=1
run_dir=$(ls -d runs/demo/[0-9]*/ | sort | tail -n 1)
snapshot=$(ls "$run_dir"network-snapshot-*.pkl | sort | tail -n 1)

echo "[demo] sampling 32 images -> ${run_dir}samples/ and the grid ${run_dir}samples-grid.png"
python generate.py --network="$snapshot" --seeds=0-31 --outdir="${run_dir}samples"
python - "${run_dir}samples" "${run_dir}samples-grid.png" <<'EOF'
import glob, sys
import numpy as np, PIL.Image
from training.image_grid import save_image_grid
# seed0000.png ... seed0031.png as an 8x4 grid, each pixel shown as 3x3 so that 32x32 images are easy to see.
images = np.stack([np.asarray(PIL.Image.open(f)) for f in sorted(glob.glob(f"{sys.argv[1]}/seed*.png"))])
images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)  # [N, C, H, W]
save_image_grid(images.repeat(3, axis=2).repeat(3, axis=3), sys.argv[2], drange=(0, 255), grid=(8, len(images) // 8))
EOF
echo "[demo] metrics of the last snapshot (domain detector, 2000 images)"
python calc_metrics.py --metrics=fid50k_full,kid50k_full,conf10k --network="$snapshot" --detector="$detector" --num-images=2000

echo "[demo] drawing the run's curves -> ${run_dir}progress.png"
python -m training.report "$run_dir"

echo
echo "[demo] done."
echo "  snapshot:      $snapshot"
echo "  samples:       ${run_dir}samples-grid.png (seeds 0-31; one PNG each in ${run_dir}samples/)"
echo "  fakes grid:    $(ls "$run_dir"fakes[0-9]*.png | sort | tail -n 1) (the training loop's snapshot grid)"
echo "  metric lines:  ${run_dir}metric-fid50k_full.jsonl, ${run_dir}metric-conf10k.jsonl (classifier confidence, classes covered)"
echo "  curves:        ${run_dir}progress.png (losses, augmentation p, AdaptiveMix term, FID against kimg and time)"
