"""DINOv2 ViT feature detector for FD_DINOv2 (Stein et al. 2023), native PyTorch.

`DINOv2ViT` has the `state_dict` layout of the published checkpoints (e.g. `dinov2_vitl14_pretrain.pth`, a
plain tensor dict read with `torch.load(weights_only=True)`):
    cls_token [1, 1, D], pos_embed [1, 1 + M*M, D], mask_token [1, D] (unused at inference),
    patch_embed.proj.{weight [D, 3, P, P], bias [D]},
    blocks.<i>.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}, norm.{weight, bias}.
The configuration is read off the tensors (D, P, M, depth, MLP width); heads = D / 64 (every DINOv2 model
uses 64-wide heads; ViT-L/14: D = 1024, 16 heads, depth 24, P = 14, M = 37).

Forward (`detector(images, return_features=True)`, the metrics' call): uint8 (or float 0..255) RGB
[N, 3, H, W] -> PIL-bicubic resize to 224x224 in float (skipped when already 224, as under --resize=clean)
-> /255 -> ImageNet normalisation -> patch tokens + class token + positional embedding (the M x M grid
bicubically interpolated to the input's grid as DINOv2 does: scale factor (G + 0.1) / M, no antialiasing)
-> pre-norm transformer blocks x = x + ls1 * attn(norm1(x)); x = x + ls2 * mlp(norm2(x)) (exact GELU;
LayerNorm eps 1e-6) -> final LayerNorm -> the class token [N, D].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from metrics.resize import clean_resize

INPUT_SIZE = 224
HEAD_DIM = 64
LN_EPS = 1e-6
POS_INTERPOLATE_OFFSET = 0.1  # DINOv2 scales the grid by (G + 0.1) / M so the output has exactly G cells.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Attention(nn.Module):
    """Multi-head self-attention: one qkv projection, softmax(q k^T / sqrt(d)) v per head, output projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(n, t, d))


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, mlp_hidden)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [N, D, G, G] -> [N, G*G, D], row-major patches.


class DINOv2ViT(nn.Module):
    """The DINOv2 ViT backbone (no register tokens, MLP feed-forward); see the module docstring."""

    input_size = INPUT_SIZE

    def __init__(
        self, dim: int = 1024, depth: int = 24, patch_size: int = 14, pos_grid: int = 37, mlp_hidden: int | None = None
    ):
        super().__init__()
        if dim % HEAD_DIM != 0:
            raise ValueError(f"DINOv2 width must be a multiple of {HEAD_DIM}, got {dim}")
        self.config = dict(
            dim=dim, depth=depth, patch_size=patch_size, pos_grid=pos_grid, mlp_hidden=mlp_hidden or 4 * dim
        )
        self.patch_size = patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pos_grid * pos_grid, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed = PatchEmbed(patch_size, dim)
        self.blocks = nn.ModuleList(Block(dim, dim // HEAD_DIM, self.config["mlp_hidden"]) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """[1, 1 + grid_h * grid_w, D]: the class position plus the patch grid resized to the input's grid."""
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        m = int(math.isqrt(patch_pos.shape[1]))
        if (grid_h, grid_w) == (m, m):
            return self.pos_embed
        grid = patch_pos.float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
        scale = ((grid_h + POS_INTERPOLATE_OFFSET) / m, (grid_w + POS_INTERPOLATE_OFFSET) / m)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        if grid.shape[-2:] != (grid_h, grid_w):
            raise ValueError(f"position grid interpolated to {tuple(grid.shape[-2:])}, expected {(grid_h, grid_w)}")
        return torch.cat([cls_pos, grid.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1).to(cls_pos.dtype)], dim=1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """0..255 RGB [N, 3, H, W] -> ImageNet-normalised float32 [N, 3, 224, 224]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"DINOv2 expects RGB images [N, 3, H, W], got shape {list(images.shape)}")
        x = clean_resize(images, self.input_size) / 255
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).reshape(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).reshape(1, 3, 1, 1)
        return (x - mean) / std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised network input [N, 3, H, W] (H, W multiples of the patch size) -> class token [N, D]."""
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embedding(x.shape[2] // self.patch_size, x.shape[3] // self.patch_size)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]

    def forward(self, images: torch.Tensor, return_features: bool = False, **_unused) -> torch.Tensor:
        """Class-token features [N, D] of 0..255 RGB images; other metric keywords are accepted and ignored."""
        if not return_features:
            raise ValueError(
                "the DINOv2 detector only gives features (FD/PR); it has no class probabilities or LPIPS head"
            )
        return self.features(self.preprocess(images))


def is_state_dict(obj) -> bool:
    """True for a DINOv2 backbone checkpoint (tensor dict with its characteristic keys)."""
    return isinstance(obj, dict) and all(
        k in obj for k in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight")
    )


def from_state_dict(state: dict[str, torch.Tensor]) -> DINOv2ViT:
    """Build the backbone whose shapes the checkpoint has and load it (strict)."""
    unsupported = [k for k in state if k.startswith("register_tokens") or ".w12." in k]
    if unsupported:
        raise ValueError(
            f"DINOv2 variants with register tokens or SwiGLU feed-forward are not supported (found {unsupported[0]!r})"
        )
    dim = state["cls_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    pos_grid = math.isqrt(state["pos_embed"].shape[1] - 1)
    model = DINOv2ViT(
        dim=dim,
        depth=depth,
        patch_size=state["patch_embed.proj.weight"].shape[-1],
        pos_grid=pos_grid,
        mlp_hidden=state["blocks.0.mlp.fc1.weight"].shape[0],
    )
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)
