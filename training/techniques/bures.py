"""Bures diversity matching (De Meulemeester et al., "The Bures Metric for Generative Adversarial Networks").

The features phi of D's last feature layer describe how diverse a batch is through their covariance. G is
pushed to give its batches the covariance of real batches with the squared Bures distance

    B(C_r, C_g)^2 = tr C_r + tr C_g - 2 tr (C_r^{1/2} C_g C_r^{1/2})^{1/2}

between the normalised covariance matrices: the features of each batch are centred with the batch mean and
the batch's matrix is scaled to trace 1, C = X^T X with X = (Phi - mean) / ||Phi - mean||_F ([N, D]). So
B^2 = 2 - 2 F(C_r, C_g) lies in [0, 2], with the fidelity F. F can be computed in two ways:

- feature space ([D, D] matrices): F = tr sqrtm(S C_g S) with S = sqrtm(C_r);
- kernel space ([N, M] cross-kernel K = X_r X_g^T): F = ||K||_* = tr sqrtm(K K^T) (the smaller Gram side),
  because X = W C^{1/2} for a partial isometry W (polar decomposition), so the singular values of
  X_r X_g^T are those of C_r^{1/2} C_g^{1/2}.

`space='auto'` picks kernel space when the smaller batch is smaller than D (cheaper eigendecomposition).

The matrix square root `sqrtm_psd` uses an eigendecomposition in float64 with eigenvalues clamped at 0; its
gradient solves the Sylvester equation S dS + dS S = dA in the eigenbasis, dS'_ij = dA'_ij / (s_i + s_j), with
the denominators clamped away from 0, so rank-deficient covariances (batch smaller than D, or collapsed
samples) give finite gradients.

Where the normalisation comes from: the workspace holds only the paper's summary and abstract, which say
"we use the last layer of the discriminator as a feature map" and "match the real batch diversity to the fake
batch diversity by using the Bures distance between covariance matrices in feature space"; the sentence of its
method section on normalising the features could not be read here. The batch-level centring and unit-trace
scaling above is this project's reading and keeps B^2 in [0, 2] whatever the feature scale; it is not a quote.

Alt-Bures, the parameter-free variant. The paper's summary: "Alt-Bures GAN, a parameter-free alternative,
achieves competitive results with Bures GAN but has a larger training time." A larger training time than the
weighted form's single G update means more G work per iteration, so every iteration makes **two** G updates:
first on the GAN loss, then on the Bures term alone, with no weight (`labs.toy`'s `alt-bures`). Alternating
the two by the parity of G's update count (`alt_bures_term`) instead halves G's GAN updates at the same cost as
the weighted form; `train.py --bures-alt=1` still does that, because its training loop has one G phase per
iteration.
"""

from __future__ import annotations

import torch

SPACES = ("auto", "feature", "kernel")
ALT_BURES_TERMS = ("gan", "bures")
_MIN_ROOT = 1e-6  # Smallest s_i + s_j used in the square root's gradient.


class _SqrtmPSD(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor) -> torch.Tensor:
        evals, evecs = torch.linalg.eigh(a.to(torch.float64))
        roots = evals.clamp(min=0).sqrt()
        ctx.save_for_backward(evecs, roots)
        ctx.dtype = a.dtype
        return ((evecs * roots) @ evecs.T).to(a.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        evecs, roots = ctx.saved_tensors
        g = grad.to(torch.float64)
        g = evecs.T @ ((g + g.T) / 2) @ evecs
        g = g / (roots[:, None] + roots[None, :]).clamp(min=_MIN_ROOT)
        return (evecs @ g @ evecs.T).to(ctx.dtype)


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Principal square root of a symmetric positive semi-definite matrix [D, D], differentiable."""
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"sqrtm_psd expects a square matrix, got {tuple(a.shape)}")
    return _SqrtmPSD.apply((a + a.T) / 2)


def bures_from_covariances(cov_r: torch.Tensor, cov_g: torch.Tensor) -> torch.Tensor:
    """Squared Bures distance tr C_r + tr C_g - 2 tr sqrtm(C_r^{1/2} C_g C_r^{1/2}) of two PSD [D, D] matrices."""
    if cov_r.shape != cov_g.shape:
        raise ValueError(
            f"Bures distance needs covariances of one size, got {tuple(cov_r.shape)} and {tuple(cov_g.shape)}"
        )
    root_r = sqrtm_psd(cov_r)
    fidelity = torch.trace(sqrtm_psd(root_r @ cov_g @ root_r))
    return (torch.trace(cov_r) + torch.trace(cov_g) - 2 * fidelity).clamp(min=0)


def normalised_batch(feat: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """X = (Phi - mean) / ||Phi - mean||_F for features [N, ...] (flattened to [N, D]); X^T X has trace 1.

    Float64: the square roots of near-zero eigenvalues of a rank-deficient covariance amplify rounding
    (sqrt(1e-8) = 1e-4 in float32), so the whole distance is computed in double precision (D x D at most)."""
    if feat.ndim < 2 or feat.shape[0] < 2:
        raise ValueError(f"Bures distance needs batches of at least 2 feature vectors, got {tuple(feat.shape)}")
    phi = feat.flatten(1).to(torch.float64)
    centred = phi - phi.mean(dim=0, keepdim=True)
    return centred / (centred.square().sum() + eps).sqrt()


def pick_space(num_real: int, num_fake: int, dim: int, space: str = "auto") -> str:
    """'feature' or 'kernel': `space` itself, or for 'auto' the one with the smaller eigendecomposition."""
    if space not in SPACES:
        raise ValueError(f"Bures space must be one of {', '.join(SPACES)}, got {space!r}")
    if space != "auto":
        return space
    return "kernel" if min(num_real, num_fake) < dim else "feature"


def bures_distance_squared(real_feat: torch.Tensor, fake_feat: torch.Tensor, space: str = "auto") -> torch.Tensor:
    """Squared Bures distance (a scalar in [0, 2]) between the normalised covariances of real [N, ...] and fake
    [M, ...] features, in float32. This is the term added to G's loss."""
    x_r, x_g = normalised_batch(real_feat), normalised_batch(fake_feat)
    if x_r.shape[1] != x_g.shape[1]:
        raise ValueError(f"Bures distance: real features have {x_r.shape[1]} values per sample, fake {x_g.shape[1]}")
    if pick_space(x_r.shape[0], x_g.shape[0], x_r.shape[1], space) == "feature":
        return bures_from_covariances(x_r.T @ x_r, x_g.T @ x_g).to(torch.float32)
    kernel = x_r @ x_g.T  # [N, M]
    gram = kernel @ kernel.T if kernel.shape[0] <= kernel.shape[1] else kernel.T @ kernel
    fidelity = torch.trace(sqrtm_psd(gram))
    return (x_r.square().sum() + x_g.square().sum() - 2 * fidelity).clamp(min=0).to(torch.float32)


def alt_bures_term(g_step: int) -> str:
    """Alt-Bures by parity (train.py's form): which term G's update number `g_step` (0, 1, 2, ...) minimises,
    'gan' on even, 'bures' on odd. `labs.toy` makes both updates in every iteration instead."""
    if g_step < 0:
        raise ValueError(f"G step index must be >= 0, got {g_step}")
    return ALT_BURES_TERMS[g_step % 2]
