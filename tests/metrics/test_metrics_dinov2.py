"""DINOv2 detector: with random weights in the published checkpoint's key layout, its features equal an
independent implementation written here with plain tensor ops (manual softmax attention, LayerNorm from
mean/variance, erf GELU, patches by reshaping, positional grid resized by an explicit bicubic matrix, PIL resize)."""

import json
import math

import numpy as np
import PIL.Image
import pytest
import torch
from test_calc_metrics import _invoke, setup  # noqa: F401 - setup is a module-scoped fixture.

import dnnlib
from metrics import detectors, dinov2, metric_main

DIM, DEPTH, PATCH, HIDDEN = 128, 2, 14, 256


def _checkpoint(pos_grid: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the key names and shapes of dinov2_vit*14_pretrain.pth (scaled to a tiny model)."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *shape, scale=0.1, offset=0.0: torch.randn(*shape, generator=g) * scale + offset  # noqa: E731
    state = {
        "cls_token": rnd(1, 1, DIM, scale=1.0),
        "pos_embed": rnd(1, 1 + pos_grid * pos_grid, DIM, scale=1.0),
        "mask_token": rnd(1, DIM),
        "patch_embed.proj.weight": rnd(DIM, 3, PATCH, PATCH, scale=0.05),
        "patch_embed.proj.bias": rnd(DIM),
        "norm.weight": rnd(DIM, offset=1.0),
        "norm.bias": rnd(DIM),
    }
    for i in range(DEPTH):
        p = f"blocks.{i}."
        state.update(
            {
                p + "norm1.weight": rnd(DIM, offset=1.0),
                p + "norm1.bias": rnd(DIM),
                p + "attn.qkv.weight": rnd(3 * DIM, DIM),
                p + "attn.qkv.bias": rnd(3 * DIM),
                p + "attn.proj.weight": rnd(DIM, DIM),
                p + "attn.proj.bias": rnd(DIM),
                p + "ls1.gamma": rnd(DIM, scale=0.5, offset=0.5),
                p + "norm2.weight": rnd(DIM, offset=1.0),
                p + "norm2.bias": rnd(DIM),
                p + "mlp.fc1.weight": rnd(HIDDEN, DIM),
                p + "mlp.fc1.bias": rnd(HIDDEN),
                p + "mlp.fc2.weight": rnd(DIM, HIDDEN),
                p + "mlp.fc2.bias": rnd(DIM),
                p + "ls2.gamma": rnd(DIM, scale=0.5, offset=0.5),
            }
        )
    return state


def _cubic_matrix(n_in: int, scale: float) -> torch.Tensor:
    """[floor(n_in * scale), n_in] weights of torch-style bicubic (A = -0.75, half-pixel, replicated borders)."""
    a = -0.75
    k_near = lambda t: ((a + 2) * t - (a + 3)) * t * t + 1  # noqa: E731  |t| <= 1
    k_far = lambda t: ((a * t - 5 * a) * t + 8 * a) * t - 4 * a  # noqa: E731  1 < |t| < 2
    n_out = math.floor(n_in * scale)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for j in range(n_out):
        src = (j + 0.5) / scale - 0.5
        i0 = math.floor(src)
        t = src - i0
        for tap, w in zip(range(i0 - 1, i0 + 3), (k_far(t + 1), k_near(t), k_near(1 - t), k_far(2 - t))):
            m[j, min(max(tap, 0), n_in - 1)] += w
    return m


def _layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-6) * w + b


def _reference_features(state: dict, images_uint8: np.ndarray) -> torch.Tensor:
    """The DINOv2 forward in float64 written out step by step."""
    s = {k: v.to(torch.float64) for k, v in state.items()}
    # Input: PIL bicubic per channel in float to 224, /255, ImageNet normalisation.
    resized = np.stack(
        [
            np.stack(
                [
                    np.asarray(
                        PIL.Image.fromarray(img[c].astype(np.float32), mode="F").resize((224, 224), PIL.Image.BICUBIC)
                    ).clip(0, 255)
                    for c in range(3)
                ]
            )
            for img in images_uint8
        ]
    )
    x = torch.from_numpy(resized).to(torch.float64) / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)[:, None, None]) / torch.tensor(
        [0.229, 0.224, 0.225], dtype=torch.float64
    )[:, None, None]
    n, grid = x.shape[0], 224 // PATCH
    # Patches in row-major order, each flattened as (channel, row, column), times the conv kernel.
    patches = (
        x.reshape(n, 3, grid, PATCH, grid, PATCH).permute(0, 2, 4, 1, 3, 5).reshape(n, grid * grid, 3 * PATCH * PATCH)
    )
    tokens = patches @ s["patch_embed.proj.weight"].reshape(DIM, -1).T + s["patch_embed.proj.bias"]
    tokens = torch.cat([s["cls_token"].expand(n, 1, DIM), tokens], dim=1)
    m = math.isqrt(s["pos_embed"].shape[1] - 1)
    pos = s["pos_embed"][0, 1:].reshape(m, m, DIM)
    if m != grid:
        r = _cubic_matrix(m, (grid + 0.1) / m)
        pos = torch.einsum("um,vk,mkd->uvd", r, r, pos)
    tokens = tokens + torch.cat([s["pos_embed"][0, :1], pos.reshape(grid * grid, DIM)])[None]
    heads = DIM // 64
    for i in range(DEPTH):
        p = f"blocks.{i}."
        h = _layer_norm(tokens, s[p + "norm1.weight"], s[p + "norm1.bias"])
        qkv = h @ s[p + "attn.qkv.weight"].T + s[p + "attn.qkv.bias"]
        q, k, v = (qkv[..., j * DIM : (j + 1) * DIM].reshape(n, -1, heads, 64).transpose(1, 2) for j in range(3))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(64), dim=-1)
        att = (weights @ v).transpose(1, 2).reshape(n, -1, DIM) @ s[p + "attn.proj.weight"].T + s[p + "attn.proj.bias"]
        tokens = tokens + att * s[p + "ls1.gamma"]
        h = _layer_norm(tokens, s[p + "norm2.weight"], s[p + "norm2.bias"])
        h = h @ s[p + "mlp.fc1.weight"].T + s[p + "mlp.fc1.bias"]
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
        tokens = tokens + (h @ s[p + "mlp.fc2.weight"].T + s[p + "mlp.fc2.bias"]) * s[p + "ls2.gamma"]
    return _layer_norm(tokens, s["norm.weight"], s["norm.bias"])[:, 0]


@pytest.mark.parametrize("pos_grid", [4, 16])  # 4: the grid is interpolated to 16x16; 16: used as stored.
def test_features_equal_independent_implementation(tmp_path, pos_grid):
    state = _checkpoint(pos_grid)
    path = tmp_path / "dinov2_tiny_pretrain.pth"
    torch.save(state, path)
    model = detectors.load_detector_file(str(path))
    assert isinstance(model, dinov2.DINOv2ViT) and model.config == dict(
        dim=DIM, depth=DEPTH, patch_size=PATCH, pos_grid=pos_grid, mlp_hidden=HIDDEN
    )
    images = np.random.default_rng(pos_grid).integers(0, 256, size=(2, 3, 32, 32), dtype=np.uint8)
    with torch.no_grad():
        got = model(torch.from_numpy(images), return_features=True)
    want = _reference_features(state, images)
    assert got.shape == (2, DIM)
    torch.testing.assert_close(got.to(torch.float64), want, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(got[0], got[1], atol=1e-2)  # Features depend on the image.


def test_unsupported_variants_and_calls_are_refused():
    state = _checkpoint(4)
    state["register_tokens"] = torch.zeros(1, 4, DIM)
    with pytest.raises(ValueError, match="register tokens"):
        dinov2.from_state_dict(state)
    model = dinov2.from_state_dict(_checkpoint(4))
    with pytest.raises(ValueError, match="only gives features"):
        model(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_registry_uses_the_published_checkpoint_by_default():
    assert detectors.DINOV2_URL == "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"
    assert "fd_dinov2_50k_full" in metric_main.list_valid_metrics()
    assert detectors.detector_name(detectors.DINOV2_URL) == "dinov2_vitl14_pretrain"


@pytest.mark.slow
def test_fd_dinov2_from_the_command_line_with_a_local_checkpoint(setup, monkeypatch, tmp_path):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = tmp_path / "dinov2_vitl14_pretrain.pth"
    torch.save(_checkpoint(4), checkpoint)
    result = _invoke(
        f"--network={setup['network']}", "--metrics=fd_dinov2_50k_full", f"--detector-dir={tmp_path}", "--num-images=12"
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    line = next(json.loads(x) for x in result.output.splitlines() if x.startswith('{"results": {"fd_dinov2'))
    assert line["results"]["fd_dinov2_50k_full"] > 0 and math.isfinite(line["results"]["fd_dinov2_50k_full"])
    assert (line["detector"], line["num_real"], line["num_gen"]) == ("dinov2_vitl14_pretrain.pth", 12, 12)


def test_missing_checkpoint_offline_gives_the_detector_error(tmp_path, monkeypatch):
    monkeypatch.setattr(
        dnnlib.util,
        "_download",
        lambda url, num_attempts, verbose: (_ for _ in ()).throw(dnnlib.util.DownloadError("offline")),
    )
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(detectors.DetectorUnavailableError, match="dinov2_vitl14_pretrain.pth"):
        detectors.locate(detectors.DINOV2_URL, detector_dir=str(tmp_path))
