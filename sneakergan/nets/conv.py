"""Convolutions for bf16 training on CPUs: forward and input gradient in bf16, weight gradient via float32.

Why: oneDNN's bf16 weight-gradient kernels split the batch over threads and join them with a spinning barrier.
On a 2-core machine shared with anything else that barrier waits for a descheduled thread: measured 266 ms
(2 threads, machine loaded) instead of 12 ms (1 thread) for one 128-channel 3x3 weight gradient, while the float32
kernel took 6 ms in the same sitting and the bf16 input gradients were unaffected. The weight gradient is
accumulated in float32 anyway, so computing it from float32 copies of the (bf16) operands loses nothing. With
one thread there is no barrier: the bf16 kernel is used there (its result returned as float32).

Both functions are their own adjoints' building blocks (the input gradient of a convolution is a transposed
convolution with the same weights and vice versa), so the double backward of R1 and path length goes through the
same float32 weight gradients. Anywhere else (float32, CUDA, inference, weights without gradients) they are
plain F.conv2d / F.conv_transpose2d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_weight


def _under_cpu_bf16_autocast(x: torch.Tensor) -> torch.Tensor:
    """x in bf16 when CPU autocast to bf16 is on (what F.conv2d would cast it to), so _split sees the real dtype."""
    if (x.dtype == torch.float32 and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16):
        return x.to(torch.bfloat16)
    return x


def _split(x: torch.Tensor, w: torch.Tensor) -> bool:
    return x.dtype == torch.bfloat16 and x.device.type == "cpu" and w.requires_grad and torch.is_grad_enabled()


def conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, stride: int = 1, padding: int | tuple = 0,
           groups: int = 1) -> torch.Tensor:
    """F.conv2d (weights and bias cast to x's dtype), with float32 weight gradients for bf16 on CPUs."""
    x = _under_cpu_bf16_autocast(x)
    if _split(x, w):
        return _Conv2d.apply(x, w, b, stride, padding, groups)
    return F.conv2d(x, w.to(x.dtype), None if b is None else b.to(x.dtype), stride, padding, 1, groups)


def conv_transpose2d(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0, output_padding: int = 0,
                     groups: int = 1) -> torch.Tensor:
    """F.conv_transpose2d (no bias), with float32 weight gradients for bf16 on CPUs."""
    x = _under_cpu_bf16_autocast(x)
    if _split(x, w):
        return _ConvTranspose2d.apply(x, w, stride, padding, output_padding, groups)
    return F.conv_transpose2d(x, w.to(x.dtype), None, stride, padding, output_padding, groups)


def _weight_grad(inp: torch.Tensor, w_shape: torch.Size, gy: torch.Tensor, stride, padding, groups: int) -> torch.Tensor:
    """d<conv(inp, w), gy>/dw as float32. One thread has no cross-thread reduction to spin on, so there the bf16
    kernel runs directly (faster, and no float32 copies of the maps); with more threads the float32 one."""
    if torch.get_num_threads() == 1:
        return conv2d_weight(inp, w_shape, gy, stride, padding, 1, groups).float()
    return conv2d_weight(inp.float(), w_shape, gy.float(), stride, padding, 1, groups)


def _pair(v: int | tuple) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, groups):  # noqa: D102 - autograd protocol
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, groups, b is not None)
        return F.conv2d(x, w.to(x.dtype), None if b is None else b.to(x.dtype), stride, padding, 1, groups)

    @staticmethod
    def backward(ctx, gy):  # noqa: D102
        x, w = ctx.saved_tensors
        stride, padding, groups, has_bias = ctx.conf
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            s, p, k = _pair(stride), _pair(padding), w.shape[-2:]
            # The stride drops trailing rows/columns; output_padding gives them back so gx has x's size.
            op = tuple(x.shape[2 + i] - ((gy.shape[2 + i] - 1) * s[i] - 2 * p[i] + k[i]) for i in range(2))
            gx = conv_transpose2d(gy, w, s, p, op, groups)
        if ctx.needs_input_grad[1]:
            gw = _weight_grad(x, w.shape, gy, stride, padding, groups)
        if has_bias and ctx.needs_input_grad[2]:
            gb = gy.float().sum(dim=(0, 2, 3))
        return gx, gw, gb, None, None, None


class _ConvTranspose2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, stride, padding, output_padding, groups):  # noqa: D102
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, groups)
        return F.conv_transpose2d(x, w.to(x.dtype), None, stride, padding, output_padding, groups)

    @staticmethod
    def backward(ctx, gy):  # noqa: D102
        x, w = ctx.saved_tensors
        stride, padding, groups = ctx.conf
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = conv2d(gy, w, None, stride, padding, groups)
        if ctx.needs_input_grad[1]:
            # <convT(x, w), gy> = <x, conv(gy, w)>: the weight gradient of conv(gy, .) against x.
            gw = _weight_grad(gy, w.shape, x, stride, padding, groups)
        return gx, gw, None, None, None, None
