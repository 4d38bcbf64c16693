// Python binding and argument checks of the upfirdn2d CUDA kernel.
#include <torch/extension.h>

#include "upfirdn2d.h"

static at::Tensor upfirdn2d(
    const at::Tensor& x, const at::Tensor& f, int up_x, int up_y, int down_x, int down_y,
    int pad_x0, int pad_x1, int pad_y0, int pad_y1, bool flip_filter, double gain) {
    TORCH_CHECK(x.is_cuda(), "upfirdn2d: x must be a CUDA tensor");
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be 4-D [N, C, H, W]");
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on the device of x");
    TORCH_CHECK(f.scalar_type() == at::kFloat && f.dim() == 2, "upfirdn2d: f must be a 2-D float32 tensor");
    TORCH_CHECK(f.size(0) >= 1 && f.size(1) >= 1, "upfirdn2d: f must not be empty");
    TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up/down factors must be >= 1");
    return upfirdn2d_cuda(x, f.contiguous(), up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d", &upfirdn2d, "Fused upsample, pad, FIR filter and downsample (CUDA)");
}
