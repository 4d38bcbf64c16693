// Python binding and argument checks of the bias_act CUDA kernel.
#include <torch/extension.h>

#include "bias_act.h"

static void check_operand(const at::Tensor& t, const at::Tensor& x, const char* name, int64_t numel) {
    if (t.numel() == 0) return;
    TORCH_CHECK(t.device() == x.device(), "bias_act: ", name, " must be on the device of x");
    TORCH_CHECK(t.scalar_type() == x.scalar_type(), "bias_act: ", name, " must have the dtype of x");
    TORCH_CHECK(t.is_contiguous(), "bias_act: ", name, " must be contiguous");
    TORCH_CHECK(t.numel() == numel, "bias_act: ", name, " has ", t.numel(), " elements, expected ", numel);
}

static at::Tensor bias_act(
    const at::Tensor& x, const at::Tensor& b, const at::Tensor& xref, const at::Tensor& yref,
    int grad, int dim, int act, double alpha, double gain, double clamp) {
    TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
    TORCH_CHECK(x.is_contiguous(), "bias_act: x must be contiguous");
    TORCH_CHECK(x.numel() < (int64_t(1) << 40), "bias_act: x is too large");
    TORCH_CHECK(grad >= 0 && grad <= 2, "bias_act: grad must be 0, 1 or 2");
    TORCH_CHECK(act >= kLinear && act <= kSwish, "bias_act: unknown activation code ", act);
    TORCH_CHECK(b.numel() == 0 || (dim >= 0 && dim < x.dim()), "bias_act: dim out of range");
    check_operand(b, x, "b", b.numel() == 0 ? 0 : x.size(dim));
    check_operand(xref, x, "xref", x.numel());
    check_operand(yref, x, "yref", x.numel());
    return bias_act_cuda(x, b, xref, yref, grad, dim, act, alpha, gain, clamp);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act, "Fused bias, activation, gain and clamp, and its derivatives (CUDA)");
}
