"""Minibatch discrimination (Salimans et al. 2016, Sec. 3.2).

D looks at the whole batch: each feature vector f(x_i) in R^A is multiplied by a tensor T in R^{A x B x C},
giving a matrix M_i in R^{B x C}. For each of the B kernels the closeness of two samples is

    c_b(x_i, x_j) = exp(-|| M_{i,b} - M_{j,b} ||_L1)

and the output for sample i is o(x_i)_b = sum_j c_b(x_i, x_j) over the batch (j = i included, which adds 1).
The layer returns [f(x_i), o(x_i)] in R^{A + B}. A collapsed generator makes o(x_i) large (all samples
close), which D can detect. Call it on reals and fakes separately, as the paper does.
"""

from __future__ import annotations

import torch


class PairwiseL1(torch.autograd.Function):
    """m [B, N, C] -> l [B, N, N], l_bij = sum_c |m_bic - m_bjc|.

    The forward is `torch.cdist(p=1)`, which never builds the [B, N, N, C] differences. cdist has no double
    backward, so the backward is written out with differentiable ops (and so can be differentiated again, as
    WGAN-GP's penalty does): with s_ijc = sign(m_ic - m_jc) = -s_jic,
        dL/dm_kc = sum_j (G_kj + G_jk) s_kjc,   G = dL/dl.
    """

    @staticmethod
    def forward(ctx, m: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(m)
        return torch.cdist(m, m, p=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (m,) = ctx.saved_tensors
        signs = torch.sign(m[:, :, None] - m[:, None])  # [B, N, N, C]
        return torch.einsum("bkj,bkjc->bkc", grad + grad.transpose(1, 2), signs)


class MinibatchDiscrimination(torch.nn.Module):
    """[N, A] features -> [N, A + num_kernels]: the features followed by the B closeness sums.

    Args:
        in_features: A, the feature size.
        num_kernels: B (paper's MNIST model: 100).
        kernel_dim: C, the size of each kernel's projection (paper: 5).
        init_std: standard deviation of T's normal initialisation.
    """

    def __init__(self, in_features: int, num_kernels: int = 100, kernel_dim: int = 5, init_std: float = 0.1):
        super().__init__()
        for name, value in (("in_features", in_features), ("num_kernels", num_kernels), ("kernel_dim", kernel_dim)):
            if int(value) < 1:
                raise ValueError(f"minibatch discrimination: {name} must be >= 1, got {value}")
        self.in_features = int(in_features)
        self.num_kernels = int(num_kernels)
        self.kernel_dim = int(kernel_dim)
        self.T = torch.nn.Parameter(torch.randn(self.in_features, self.num_kernels * self.kernel_dim) * init_std)

    def closeness(self, x: torch.Tensor) -> torch.Tensor:
        """o(x_i)_b = sum_j exp(-||M_i,b - M_j,b||_1), shape [N, B] (float32 inside)."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"minibatch discrimination expects [N, {self.in_features}] features, got {tuple(x.shape)}")
        m = (x.to(torch.float32) @ self.T.to(torch.float32)).view(-1, self.num_kernels, self.kernel_dim)  # [N, B, C]
        m = m.permute(1, 0, 2).contiguous()  # [B, N, C]
        return torch.exp(-PairwiseL1.apply(m)).sum(dim=2).T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.closeness(x).to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}"
