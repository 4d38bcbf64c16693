"""Batched homogeneous transform matrices for the augmentation pipe: translate, scale, rotate (2-D, 3x3) and
translate, scale, Rodrigues rotation about a unit axis (3-D colour space, 4x4).

Every builder takes per-sample tensors of shape [N] (or Python numbers, broadcast to the
tensors' shape) and returns float32 matrices of shape [N, 3, 3] (2-D, pixel coordinates)
or [N, 4, 4] (3-D, colour space). With only Python numbers the result is a single
cached [3, 3] / [4, 4] constant on `device`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from torch_utils import misc

Entry = torch.Tensor | float | int


def matrix(*rows: Sequence[Entry], device: torch.device | None = None) -> torch.Tensor:
    """Stack rows of entries into a matrix; tensor entries [N] give [N, R, C]."""
    if not all(len(row) == len(rows[0]) for row in rows):
        raise ValueError("matrix(): all rows must have the same length")
    entries = [x for row in rows for x in row]
    tensors = [x for x in entries if isinstance(x, torch.Tensor)]
    if not tensors:
        return misc.constant(np.asarray(rows), dtype=torch.float32, device=device)
    ref = tensors[0]
    entries = [
        x if isinstance(x, torch.Tensor) else misc.constant(x, shape=ref.shape, dtype=torch.float32, device=ref.device)
        for x in entries
    ]
    return torch.stack(entries, dim=-1).reshape(ref.shape + (len(rows), len(rows[0])))


def translate2d(tx: Entry, ty: Entry, device: torch.device | None = None) -> torch.Tensor:
    """T(tx, ty): [[1, 0, tx], [0, 1, ty], [0, 0, 1]]."""
    return matrix([1, 0, tx], [0, 1, ty], [0, 0, 1], device=device)


def scale2d(sx: Entry, sy: Entry, device: torch.device | None = None) -> torch.Tensor:
    """S(sx, sy) = diag(sx, sy, 1)."""
    return matrix([sx, 0, 0], [0, sy, 0], [0, 0, 1], device=device)


def rotate2d(theta: torch.Tensor) -> torch.Tensor:
    """R(theta): counter-clockwise in x-right / y-down pixel coordinates; theta in radians, [N]."""
    c, s = torch.cos(theta), torch.sin(theta)
    return matrix([c, -s, 0], [s, c, 0], [0, 0, 1])


def translate3d(tx: Entry, ty: Entry, tz: Entry, device: torch.device | None = None) -> torch.Tensor:
    """T3(tx, ty, tz): 4x4 homogeneous translation."""
    return matrix([1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1], device=device)


def scale3d(sx: Entry, sy: Entry, sz: Entry, device: torch.device | None = None) -> torch.Tensor:
    """S3(sx, sy, sz) = diag(sx, sy, sz, 1)."""
    return matrix([sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1], device=device)


def rotate3d(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """R3(axis, theta): Rodrigues rotation about the unit `axis` ([3] or more; first 3 used) by theta [N]."""
    vx, vy, vz = axis[..., 0], axis[..., 1], axis[..., 2]
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return matrix(
        [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
        [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
        [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
        [0, 0, 0, 1],
    )
