// Fused bias + activation + gain + clamp and its first/second derivatives (spec §1.5), CUDA implementation.
// The per-element arithmetic is a host+device function so that it can be checked on the CPU as well.
#pragma once

#include <cmath>

#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

// Activation codes; they match `cuda_idx` in bias_act.py.
enum BiasActKind : int { kLinear = 1, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish };

// grad = 0: value, 1: first derivative, 2: second derivative of the activation (without gain).
template <typename T>
C10_HOST_DEVICE inline T activation(int act, int grad, T x, T y, T alpha) {
    const T one = 1, zero = 0;
    const T selu_lambda = T(1.0507009873554804934), selu_alpha = T(1.6732632423543772848);
    switch (act) {
        case kLinear:
            return grad == 0 ? x : (grad == 1 ? one : zero);
        case kRelu:  // derivative from the output sign
            return grad == 0 ? (x > zero ? x : zero) : (grad == 1 ? (y > zero ? one : zero) : zero);
        case kLrelu:
            return grad == 0 ? (x > zero ? x : alpha * x) : (grad == 1 ? (y > zero ? one : alpha) : zero);
        case kTanh: {
            const T t = std::tanh(x);
            return grad == 0 ? t : (grad == 1 ? one - t * t : -T(2) * t * (one - t * t));
        }
        case kSigmoid: {
            const T s = one / (one + std::exp(-x));
            return grad == 0 ? s : (grad == 1 ? s * (one - s) : s * (one - s) * (one - T(2) * s));
        }
        case kElu:
            if (x >= zero) return grad == 0 ? x : (grad == 1 ? one : zero);
            return grad == 0 ? std::expm1(x) : std::exp(x);
        case kSelu:
            if (x >= zero) return grad == 0 ? selu_lambda * x : (grad == 1 ? selu_lambda : zero);
            return grad == 0 ? selu_lambda * selu_alpha * std::expm1(x) : selu_lambda * selu_alpha * std::exp(x);
        case kSoftplus: {
            if (grad == 0) return x > T(20) ? x : std::log1p(std::exp(x));  // threshold 20, as torch's softplus
            const T s = one / (one + std::exp(-x));
            return grad == 1 ? s : s * (one - s);
        }
        case kSwish: {
            const T s = one / (one + std::exp(-x));
            if (grad == 0) return x * s;
            return grad == 1 ? s + x * s * (one - s) : s * (one - s) * (T(2) + x * (one - T(2) * s));
        }
        default:
            return zero;
    }
}

// One element. grad = 0: clamp(act(x + b) * gain). grad > 0: x is the incoming gradient and the result is
// x * gain * act^(grad)(xref + b), zero where the forward output yref was clamped (|yref| >= clamp).
// clamp < 0 disables clamping. Without xref (relu/lrelu/linear), only yref's sign is used.
template <typename T>
C10_HOST_DEVICE inline T bias_act_element(int grad, int act, T x, T bias, T xref, T yref, T alpha, T gain, T clamp) {
    if (grad == 0) {
        T y = activation<T>(act, 0, x + bias, T(0), alpha) * gain;
        if (clamp >= T(0)) y = y > clamp ? clamp : (y < -clamp ? -clamp : y);
        return y;
    }
    if (clamp >= T(0) && !(yref > -clamp && yref < clamp)) return T(0);
    return x * gain * activation<T>(act, grad, xref + bias, yref, alpha);
}

// The CUDA launcher. x, b, xref, yref as above (empty tensors for the unused ones), contiguous, dtype of x.
// b is indexed by the position along dimension `dim` of x.
at::Tensor bias_act_cuda(
    const at::Tensor& x, const at::Tensor& b, const at::Tensor& xref, const at::Tensor& yref,
    int grad, int dim, int act, double alpha, double gain, double clamp);
