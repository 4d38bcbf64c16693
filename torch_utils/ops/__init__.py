"""Low-level ops of the networks: FIR resampling, fused bias/activation, resampling conv, fma.

Import the op modules by name, e.g. `from torch_utils.ops import upfirdn2d, bias_act, conv2d_resample, fma`.
`normalize_2nd_moment` is importable from here directly. See docs/ops.md for the `impl` switch, the CUDA
plugins and the `GAN_OPS_REFERENCE` environment variable.
"""

from torch_utils.ops.normalize import normalize_2nd_moment

__all__ = ["normalize_2nd_moment"]
