"""Export a snapshot's generator without pickle: safetensors weights + JSON arguments, or an ONNX graph.

    python -m training.export --network=network-snapshot-000400.pkl --format=safetensors --outdir=exported
    python -m training.export --network=network-snapshot-000400.pkl --format=onnx --outdir=exported

safetensors writes `<outdir>/generator.safetensors` (every parameter and buffer of `G_ema`, including
`w_avg` and the constant noise) and `<outdir>/generator.json` (the class and its constructor arguments).
`load_exported_generator(outdir)` rebuilds the Generator from them; neither file can execute code when read.

onnx writes `<outdir>/generator.onnx`: inputs `z` [N, z_dim] float32, `c` [N, c_dim] float32 (only for a
conditional generator) and `psi` (scalar float32, truncation toward w_avg, all layers); output `img`
[N, C, H, W] float32 in about [-1, 1], with the constant noise buffers and float32 everywhere. N is dynamic.
The graph is made by PyTorch's torch.export-based ONNX exporter from the ops' reference (non-CUDA) path with
the non-fused modulated convolution (the same math as the fused one, batch-size independent).

Needs the optional packages: `pip install .[export]` (safetensors; onnx, onnxscript and onnxruntime for ONNX).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import warnings

import click
import numpy as np
import torch

from dnnlib.atomic import atomic_path, write_text
from dnnlib.cli import click_errors
from training.generator_io import GeneratorLoadError, load_generator_pkl
from training.networks import Generator

WEIGHTS_NAME = "generator.safetensors"
CONFIG_NAME = "generator.json"
ONNX_NAME = "generator.onnx"
EXPORT_FORMAT = "adaptivemix-gan-generator/1"


def require(module: str, purpose: str):
    """Import an optional package or raise ImportError with the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{purpose} needs the Python package '{module}': pip install .[export]  (or: pip install {module})"
        ) from None


# ----------------------------------------------------------------------------
# safetensors.


def save_safetensors(G: Generator, outdir: str) -> list[str]:
    """Write G's state dict as safetensors and its constructor arguments as JSON; returns the two paths."""
    safetensors_torch = require("safetensors.torch", "safetensors export")
    os.makedirs(outdir, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in G.state_dict().items()}
    config = dict(format=EXPORT_FORMAT, class_name="training.networks.Generator", init_kwargs=G.init_kwargs)
    weights_path = os.path.join(outdir, WEIGHTS_NAME)
    config_path = os.path.join(outdir, CONFIG_NAME)
    with atomic_path(weights_path) as tmp:
        safetensors_torch.save_file(state, tmp, metadata=dict(format=EXPORT_FORMAT))
    write_text(config_path, json.dumps(config, indent=2) + "\n")
    return [weights_path, config_path]


def load_exported_generator(folder: str, device: torch.device | str = "cpu") -> Generator:
    """The Generator saved by save_safetensors in `folder`, in eval mode (strict weight match, no pickle)."""
    safetensors_torch = require("safetensors.torch", "loading an exported generator")
    config_path = os.path.join(folder, CONFIG_NAME)
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(
            f'"{config_path}" is not a readable export config ({err}); export with python -m training.export'
        ) from None
    if config.get("format") != EXPORT_FORMAT:
        raise ValueError(f'"{config_path}" has format {config.get("format")!r}, expected {EXPORT_FORMAT!r}')
    G = Generator(**config["init_kwargs"])
    G.load_state_dict(safetensors_torch.load_file(os.path.join(folder, WEIGHTS_NAME)))
    return G.eval().requires_grad_(False).to(device)


# ----------------------------------------------------------------------------
# ONNX.


class ExportableGenerator(torch.nn.Module):
    """G as one graph: (z, c, psi) -> image with constant noise, float32 and the non-fused modulated conv."""

    def __init__(self, G: Generator):
        super().__init__()
        self.G = G

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, psi: torch.Tensor) -> torch.Tensor:
        ws = self.G.mapping(z, c)
        ws = self.G.mapping.w_avg.lerp(ws, psi)  # Truncation w_avg + psi (w - w_avg) with psi as an input.
        return self.G.synthesis(ws, noise_mode="const", force_fp32=True, fused_modconv=False)


def save_onnx(G: Generator, outdir: str) -> list[str]:
    """Write G as `generator.onnx` (see the module docstring for inputs and outputs); returns its path."""
    for module in ("onnx", "onnxscript"):
        require(module, "ONNX export")
    os.makedirs(outdir, exist_ok=True)
    G = G.eval().requires_grad_(False).cpu()
    batch = 2  # Example batch; the exported batch dimension is dynamic.
    z = torch.randn([batch, G.z_dim])
    psi = torch.tensor(1.0)
    c = torch.zeros([batch, G.c_dim]) if G.c_dim > 0 else None
    dim = torch.export.Dim("batch")
    names = ["z", "c", "psi"] if c is not None else ["z", "psi"]
    path = os.path.join(outdir, ONNX_NAME)
    onnx_logger = logging.getLogger("torch.onnx")
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)  # The exporter logs a warning per missing torchvision op; none is used here.
    try:
        with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                ExportableGenerator(G),
                (z, c, psi),
                tmp,
                input_names=names,
                output_names=["img"],
                dynamo=True,
                dynamic_shapes={"z": {0: dim}, "c": {0: dim} if c is not None else None, "psi": None},
                verbose=False,
            )
    finally:
        onnx_logger.setLevel(level)
    return [path]


def run_onnx(path: str, z: np.ndarray, psi: float, c: np.ndarray | None = None) -> np.ndarray:
    """Evaluate an exported generator with onnxruntime: z [N, z_dim] (and c [N, c_dim]) -> images [N, C, H, W]."""
    ort = require("onnxruntime", "running an ONNX export")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = dict(z=np.asarray(z, dtype=np.float32), psi=np.asarray(psi, dtype=np.float32))
    if c is not None:
        feeds["c"] = np.asarray(c, dtype=np.float32)
    return session.run(None, feeds)[0]


# ----------------------------------------------------------------------------
# Command line.


@click.command()
@click.option("--network", "network_pkl", help="Network pickle (G_ema is exported)", required=True, metavar="PATH")
@click.option("--format", "fmt", help="Export format", type=click.Choice(["safetensors", "onnx"]), required=True)
@click.option("--outdir", help="Folder to write to", required=True, metavar="DIR")
def main(network_pkl: str, fmt: str, outdir: str) -> None:
    """Export a snapshot's G_ema as safetensors + JSON or as ONNX."""
    with click_errors(GeneratorLoadError, ImportError):
        G = load_generator_pkl(network_pkl, torch.device("cpu"))
        paths = save_safetensors(G, outdir) if fmt == "safetensors" else save_onnx(G, outdir)
    for path in paths:
        print(f'Saved "{path}"')


if __name__ == "__main__":
    main()
