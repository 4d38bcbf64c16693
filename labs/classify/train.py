"""Training loop and checkpoints of the classification lab.

A run folder holds `classifier.pt` (rewritten atomically after every epoch) and `results.jsonl` (one JSON
object per line: every epoch, every eval and every OOD run). The checkpoint is a plain dict that
`torch.load(weights_only=True)` reads without executing code:
    {"kind": CHECKPOINT_KIND, "config": JSON text, "epoch": epochs done, "model": state dict,
     "optimizer": state dict}
Each epoch reseeds torch and NumPy from (seed, epoch), so a resumed run repeats exactly what an
uninterrupted one would have done. Optimiser: SGD (momentum 0.9), learning rate x 0.2 after 50 % and 75 %
of the epochs.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dnnlib.atomic import atomic_path, write_text
from dnnlib.progress import ProgressBar
from labs.classify.data import random_crop_flip
from labs.classify.methods import ImageClassifier, MethodOptions, training_loss
from labs.common.data import load_images
from training.distributed import resolve_device

CHECKPOINT_KIND = "adaptivemix-lab-classifier"
CHECKPOINT_NAME = "classifier.pt"
RESULTS_NAME = "results.jsonl"
RESUMABLE_KEYS = ("epochs",)  # Config entries a resumed run may change.


def append_result(folder: str, record: dict[str, Any]) -> None:
    """Append one JSON line to `folder/results.jsonl` (the whole file is rewritten atomically)."""
    path = os.path.join(folder, RESULTS_NAME)
    old = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
    write_text(path, old + json.dumps(record, sort_keys=True) + "\n")


def save_checkpoint(
    path: str, config: dict, epoch: int, model: ImageClassifier, optimizer: torch.optim.Optimizer
) -> None:
    state = {
        "kind": CHECKPOINT_KIND,
        "config": json.dumps(config, sort_keys=True),
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def build_model(config: dict) -> ImageClassifier:
    return ImageClassifier(
        config["backbone"],
        config["in_channels"],
        config["num_classes"],
        config["method"],
        config["mean"],
        config["std"],
        config["orth_head"],
        config["orth_scale"],
    )


def load_checkpoint(path: str) -> tuple[dict, ImageClassifier, dict]:
    """(config, model in eval mode, raw checkpoint dict). ValueError (one line) for anything else than ours."""
    if not os.path.isfile(path):
        raise ValueError(f"--network={path} does not exist; give the classifier.pt of a `labs.classify train` run")
    hint = "give the classifier.pt written by `python -m labs.classify train`"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(
            f"{path} is not a classification-lab checkpoint ({str(err).splitlines()[0][:120]}); {hint}"
        ) from err
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is a checkpoint of another kind (no kind={CHECKPOINT_KIND!r}); {hint}")
    config = json.loads(state["config"])
    config.setdefault("orth_scale", 1.0)  # Checkpoints from before the option scored the unscaled cosine.
    model = build_model(config)
    model.load_state_dict(state["model"])
    return config, model.eval(), state


def check_images(images: torch.Tensor, config: dict, path: str) -> None:
    """ValueError unless images [N, C, H, W] have the channels and resolution the network was trained on."""
    want = [config["in_channels"], config["resolution"], config["resolution"]]
    if list(images.shape[1:]) != want:
        raise ValueError(
            f"{path} holds {'x'.join(map(str, images.shape[1:]))} (CxHxW) images but the network was trained "
            f"on {'x'.join(map(str, want))}; convert the data with dataset_tool.py --width --height"
        )


def _lr_at(config: dict, epoch: int) -> float:
    drops = sum(epoch >= math.ceil(config["epochs"] * f) for f in (0.5, 0.75))
    return config["lr"] * 0.2**drops


def _seed(config: dict, epoch: int) -> None:
    torch.manual_seed(config["seed"] * 100003 + epoch)
    np.random.seed((config["seed"] * 100003 + epoch) % 2**32)


def train(
    config: dict, outdir: str, resume: bool, device: str = "auto", log: Callable[[str], None] = print
) -> ImageClassifier:
    """Train (or continue) the run in `outdir` on `device` (auto/cpu/cuda); returns the trained model.

    Config keys: see `labs.classify train`. The uint8 images live on the device; batches become [0, 1] floats.
    """
    device = torch.device(resolve_device(device))
    ckpt_path = os.path.join(outdir, CHECKPOINT_NAME)
    if os.path.exists(ckpt_path) and not resume:
        raise ValueError(f"{ckpt_path} exists; pass --resume to continue that run or choose another --outdir")
    if resume and not os.path.exists(ckpt_path):
        raise ValueError(f"--resume: {outdir} has no {CHECKPOINT_NAME} yet; drop --resume to start a new run")
    images, labels = load_images(
        config["data"], use_labels=True, max_images=config["max_images"], subset_seed=config["seed"]
    )
    pixels = images.double().div(255)
    config = dict(
        config,
        in_channels=images.shape[1],
        resolution=images.shape[2],
        num_classes=int(labels.max()) + 1,
        mean=pixels.mean(dim=(0, 2, 3)).tolist(),
        std=pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist(),
    )
    del pixels
    images, labels = images.to(device), labels.to(device)
    torch.manual_seed(config["seed"])
    np.random.seed(config["seed"])
    model = build_model(config).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9, weight_decay=config["weight_decay"])
    start_epoch = 0
    if resume:
        old_config, old_model, state = load_checkpoint(ckpt_path)
        changed = sorted(k for k in config if k not in RESUMABLE_KEYS and old_config.get(k) != config[k])
        if changed:
            raise ValueError(
                f"--resume: the run in {outdir} used other settings for {', '.join(changed)}; "
                "resume with the same options (only --epochs may change)"
            )
        model.load_state_dict(old_model.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
        log(f"resuming {ckpt_path} after epoch {start_epoch}")
    os.makedirs(outdir, exist_ok=True)
    options = MethodOptions(alpha=config["alpha"], noise_std=config["noise_std"])
    for epoch in range(start_epoch, config["epochs"]):
        _seed(config, epoch)
        lr = _lr_at(config, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        order = torch.randperm(len(images)).to(device)
        batches = [order[i : i + config["batch"]] for i in range(0, len(order), config["batch"])]
        batches = [b for b in batches if len(b) > 1]  # Batch norm needs two samples.
        model.train()
        start, total, extras = time.time(), 0.0, {}
        with ProgressBar(len(batches), desc=f"epoch {epoch + 1}/{config['epochs']}", unit="batch") as progress:
            for idx in batches:
                x = images[idx].float().div(255)
                if config["augment"]:
                    x = random_crop_flip(x)
                loss, logs = training_loss(model, config["method"], x, labels[idx], options)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                for key, value in logs.items():
                    extras[key] = extras.get(key, 0.0) + value / len(batches)
                progress.update(1)
        record = {
            "kind": "train",
            "epoch": epoch + 1,
            "loss": total / len(batches),
            "lr": lr,
            "sec": round(time.time() - start, 2),
            **extras,
        }
        save_checkpoint(ckpt_path, config, epoch + 1, model, optimizer)
        append_result(outdir, record)
        log(f"epoch {epoch + 1}/{config['epochs']} loss {record['loss']:.4f} lr {lr:g} {record['sec']:.1f}s")
    return model.eval()
