// CUDA kernel of upfirdn2d: one thread per output sample gathers the filter taps that land on input samples.
#include <ATen/ATen.h>
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "upfirdn2d.h"

namespace {

template <typename scalar_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x, const float* __restrict__ f, scalar_t* __restrict__ y,
                                 Upfirdn2dGeometry g, int64_t total, at::acc_type<scalar_t, true> gain) {
    using acc_t = at::acc_type<scalar_t, true>;
    for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
         index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
        const int64_t ox = index % g.out_w;
        const int64_t oy = (index / g.out_w) % g.out_h;
        const int64_t c = (index / (g.out_w * g.out_h)) % g.channels;
        const int64_t n = index / (g.out_w * g.out_h * g.channels);
        const scalar_t* plane = x + n * g.in_stride[0] + c * g.in_stride[1];
        const acc_t sum = upfirdn2d_output_sum<scalar_t, acc_t>(plane, f, g, oy, ox);
        y[n * g.out_stride[0] + c * g.out_stride[1] + oy * g.out_stride[2] + ox * g.out_stride[3]] =
            static_cast<scalar_t>(sum * gain);
    }
}

}  // namespace

at::Tensor upfirdn2d_cuda(
    const at::Tensor& x, const at::Tensor& f, int up_x, int up_y, int down_x, int down_y,
    int pad_x0, int pad_x1, int pad_y0, int pad_y1, bool flip_filter, double gain) {
    const c10::cuda::CUDAGuard device_guard(x.device());
    const auto out_size = upfirdn2d_output_size(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1);
    at::Tensor y = at::empty({x.size(0), x.size(1), out_size.first, out_size.second}, x.options(), x.suggest_memory_format());
    const int64_t total = y.numel();
    if (total == 0) return y;
    const Upfirdn2dGeometry g = upfirdn2d_geometry(x, f, y, up_x, up_y, down_x, down_y, pad_x0, pad_y0, flip_filter);
    const int threads = 256;
    const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, int64_t(1) << 30);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cuda", [&] {
        upfirdn2d_kernel<scalar_t><<<static_cast<unsigned int>(blocks), threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            x.data_ptr<scalar_t>(), f.data_ptr<float>(), y.data_ptr<scalar_t>(), g, total,
            static_cast<at::acc_type<scalar_t, true>>(gain));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return y;
}
