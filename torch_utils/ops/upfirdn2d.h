// Fused upsample / pad / FIR filter / downsample of [N, C, H, W] images (spec §1.3), CUDA implementation.
// The per-output arithmetic is a host+device function so that it can be checked on the CPU as well.
#pragma once

#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

// Sizes and strides (in elements) of one call; x is read and y written through their strides.
struct Upfirdn2dGeometry {
    int64_t channels, in_h, in_w, out_h, out_w;
    int64_t in_stride[4], out_stride[4];
    int up_x, up_y, down_x, down_y, pad_x0, pad_y0, filter_h, filter_w;
    bool flip_filter;
};

// First tap index a >= 0 for which base + a is a non-negative multiple of `up`; the taps in between fall on
// inserted zeros or on the padding before the image.
C10_HOST_DEVICE inline int upfirdn2d_first_tap(int64_t base, int up) {
    const int64_t a = base < 0 ? -base : 0;
    const int64_t rem = (base + a) % up;
    return static_cast<int>(rem == 0 ? a : a + (up - rem));
}

// sum_{a, b} k[a, b] * p[oy * down_y + a, ox * down_x + b] for one output sample of one channel `plane` of x,
// where p is the zero-inserted, padded image and k the filter f [fh, fw] (flipped unless flip_filter).
// Only taps that land on input samples are visited. The caller multiplies by the gain.
template <typename scalar_t, typename acc_t>
C10_HOST_DEVICE inline acc_t upfirdn2d_output_sum(
    const scalar_t* plane, const float* f, const Upfirdn2dGeometry& g, int64_t oy, int64_t ox) {
    const int64_t base_y = oy * g.down_y - g.pad_y0;  // row of tap 0 in the zero-inserted image
    const int64_t base_x = ox * g.down_x - g.pad_x0;
    acc_t sum = 0;
    for (int a = upfirdn2d_first_tap(base_y, g.up_y); a < g.filter_h; a += g.up_y) {
        const int64_t iy = (base_y + a) / g.up_y;
        if (iy >= g.in_h) break;
        const int fa = g.flip_filter ? a : g.filter_h - 1 - a;
        for (int b = upfirdn2d_first_tap(base_x, g.up_x); b < g.filter_w; b += g.up_x) {
            const int64_t ix = (base_x + b) / g.up_x;
            if (ix >= g.in_w) break;
            const int fb = g.flip_filter ? b : g.filter_w - 1 - b;
            sum += static_cast<acc_t>(plane[iy * g.in_stride[2] + ix * g.in_stride[3]]) *
                   static_cast<acc_t>(f[fa * g.filter_w + fb]);
        }
    }
    return sum;
}

// Output sizes (out_h, out_w) of a call.
inline std::pair<int64_t, int64_t> upfirdn2d_output_size(
    const at::Tensor& x, const at::Tensor& f, int up_x, int up_y, int down_x, int down_y,
    int pad_x0, int pad_x1, int pad_y0, int pad_y1) {
    const int64_t padded_h = x.size(2) * up_y + pad_y0 + pad_y1;
    const int64_t padded_w = x.size(3) * up_x + pad_x0 + pad_x1;
    TORCH_CHECK(padded_h >= f.size(0) && padded_w >= f.size(1), "upfirdn2d: the output would be empty");
    return {(padded_h - f.size(0)) / down_y + 1, (padded_w - f.size(1)) / down_x + 1};
}

// Fills every field of the geometry from the arguments and the shapes/strides of x, f and y.
inline Upfirdn2dGeometry upfirdn2d_geometry(
    const at::Tensor& x, const at::Tensor& f, const at::Tensor& y, int up_x, int up_y, int down_x, int down_y,
    int pad_x0, int pad_y0, bool flip_filter) {
    Upfirdn2dGeometry g;
    g.channels = x.size(1);
    g.in_h = x.size(2);
    g.in_w = x.size(3);
    g.out_h = y.size(2);
    g.out_w = y.size(3);
    for (int i = 0; i < 4; ++i) {
        g.in_stride[i] = x.stride(i);
        g.out_stride[i] = y.stride(i);
    }
    g.up_x = up_x;
    g.up_y = up_y;
    g.down_x = down_x;
    g.down_y = down_y;
    g.pad_x0 = pad_x0;
    g.pad_y0 = pad_y0;
    g.filter_h = static_cast<int>(f.size(0));
    g.filter_w = static_cast<int>(f.size(1));
    g.flip_filter = flip_filter;
    return g;
}

// y = gain * upfirdn2d(x, f, ...), computed on the GPU; accumulates in float32 (double for double inputs).
at::Tensor upfirdn2d_cuda(
    const at::Tensor& x, const at::Tensor& f, int up_x, int up_y, int down_x, int down_y,
    int pad_x0, int pad_x1, int pad_y0, int pad_y1, bool flip_filter, double gain);
