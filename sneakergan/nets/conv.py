"""Convolutions for bf16 training on CPUs: forward, input and weight gradients in bf16, weight gradients returned
as float32.

Why the custom backward: the weight gradient is accumulated into float32 master weights, and the double backward of
R1 and path length must go through the same kernels. oneDNN's bf16 weight-gradient kernel is 3-4x faster than the
float32 one on copies of the operands (2 idle threads, batch 32: 19 ms against 62 ms for a 128-channel 3x3 layer at
32x24, 23 against 94 ms for 32 channels at 128x96), so it is the default. It splits the batch over threads and joins
them with a spinning barrier, though: on a 2-core machine shared with other busy processes that barrier can wait for
a descheduled thread (once measured 266 ms instead of 6 ms). `SNEAKERGAN_FP32_WEIGHT_GRAD=1` picks the float32
kernel for such machines; with one thread there is no barrier and the bf16 kernel is always used.

Both functions are their own adjoints' building blocks (the input gradient of a convolution is a transposed
convolution with the same weights and vice versa), so the double backward of R1 and path length goes through the
same float32 weight gradients. Anywhere else (float32, CUDA, inference, weights without gradients) they are
plain F.conv2d / F.conv_transpose2d.
"""

from __future__ import annotations

import os

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


def _fp32_weight_grad() -> bool:
    """SNEAKERGAN_FP32_WEIGHT_GRAD=1 on more than one thread: weight gradients from float32 copies (module doc)."""
    return torch.get_num_threads() > 1 and os.environ.get("SNEAKERGAN_FP32_WEIGHT_GRAD") == "1"


def _weight_grad(inp: torch.Tensor, w_shape: torch.Size, gy: torch.Tensor, stride, padding, groups: int) -> torch.Tensor:
    """d<conv(inp, w), gy>/dw as float32: the bf16 kernel, or float32 copies where SNEAKERGAN_FP32_WEIGHT_GRAD=1
    asks for them on more than one thread (module docstring)."""
    if _fp32_weight_grad():
        return conv2d_weight(inp.float(), w_shape, gy.float(), stride, padding, 1, groups)
    return conv2d_weight(inp, w_shape, gy, stride, padding, 1, groups).float()


def _pair(v: int | tuple) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def _conv2d_backward(needs: tuple[bool, ...], x: torch.Tensor, w: torch.Tensor, w_lp: torch.Tensor, gy: torch.Tensor,
                     stride, padding, groups: int, has_bias: bool) -> tuple:
    """(gx, gw, gb) of F.conv2d(x, w, b) for the output gradient gy; gw and gb float32."""
    gx = gw = gb = None
    if not (torch.is_grad_enabled() and w.requires_grad) and not _fp32_weight_grad():
        # A plain backward: oneDNN's own backward kernels, all gradients from one call. Its backward-data kernel
        # ran stride-2 layers 1.3-2.6x faster than the transposed convolution (the same sums, other rounding), and
        # the bias gradient comes out of the weight-gradient pass 5-12% cheaper than a separate sum (rounded alike:
        # float32 accumulation, one bf16 rounding per channel).
        bias_grad = has_bias and needs[2]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            gy, x, w_lp, [w.shape[0]] if bias_grad else None, list(_pair(stride)), list(_pair(padding)), [1, 1],
            False, [0, 0], groups, [needs[0], needs[1], bias_grad])
        return gx, None if gw is None else gw.float(), gb.float() if bias_grad else None
    gx, gw = _conv2d_backward_differentiable(needs, x, w, w_lp, gy, stride, padding, groups)
    if has_bias and needs[2]:
        # Summed in gy's dtype: the CPU kernel accumulates bf16 in float32 and rounds only the C sums (2^-9
        # relative, below the bf16 maps' own error). `sum(dtype=torch.float32)` would first copy all of gy to
        # float32 (measured 5x slower, ~4% of the demo64 bf16 step).
        gb = gy.sum(dim=(0, 2, 3)).float()
    return gx, gw, gb


def _conv2d_backward_differentiable(needs: tuple[bool, ...], x: torch.Tensor, w: torch.Tensor, w_lp: torch.Tensor,
                                    gy: torch.Tensor, stride, padding, groups: int) -> tuple:
    """(gx, gw), gx as a function of gy and the float32 weights where a double backward (R1, path length) needs it."""
    gx = gw = None
    if needs[0]:
        s, p, k = _pair(stride), _pair(padding), w.shape[-2:]
        # The stride drops trailing rows/columns; output_padding gives them back so gx has x's size.
        op = tuple(x.shape[2 + i] - ((gy.shape[2 + i] - 1) * s[i] - 2 * p[i] + k[i]) for i in range(2))
        # A plain backward reuses the forward's cast of the weights (one cast per call, not two); a double
        # backward (R1, path length) needs gx as a function of the float32 weights themselves.
        gx = (conv_transpose2d(gy, w, s, p, op, groups) if torch.is_grad_enabled() and w.requires_grad
              else F.conv_transpose2d(gy, w_lp, None, s, p, op, groups))
    if needs[1]:
        gw = _weight_grad(x, w.shape, gy, stride, padding, groups)
    return gx, gw


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, groups):  # noqa: D102 - autograd protocol
        w_lp = w.to(x.dtype)
        ctx.save_for_backward(x, w, w_lp)
        ctx.conf = (stride, padding, groups, b is not None)
        return F.conv2d(x, w_lp, None if b is None else b.to(x.dtype), stride, padding, 1, groups)

    @staticmethod
    def backward(ctx, gy):  # noqa: D102
        x, w, w_lp = ctx.saved_tensors
        stride, padding, groups, has_bias = ctx.conf
        return (*_conv2d_backward(ctx.needs_input_grad, x, w, w_lp, gy, stride, padding, groups, has_bias),
                None, None, None)


def _fused_act_available(x: torch.Tensor) -> bool:
    return (x.dtype == torch.bfloat16 and x.device.type == "cpu" and x.ndim == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def conv2d_lrelu(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: int, padding: int, slope: float,
                 clamp: float | None) -> torch.Tensor | None:
    """clamp(leaky_relu(conv2d(x, w) + b), -clamp, clamp) as one oneDNN convolution, for channels-last bf16 on CPUs
    (None elsewhere: the caller runs the separate ops).

    Why: the activation and clamp after a convolution were two more passes over the map, each writing a fresh
    tensor; at the discriminator's top layers (8 MB bf16 maps for batch 32) that cost 1.3-2.3x the convolution
    itself. oneDNN clamps in the convolution's float32 accumulator (a post-op, at [-clamp / slope, clamp]) and one
    in-place leaky ReLU follows: clamp(lrelu(z)) == lrelu(clamp(z, -c / slope, c)) bit for bit, since rounding to
    bf16 commutes with the clamp. Backward: both masks from the output alone, then the convolution's gradients.
    """
    x = _under_cpu_bf16_autocast(x)
    if not _fused_act_available(x):
        return None
    if not torch.is_grad_enabled() or not (x.requires_grad or w.requires_grad or (b is not None and b.requires_grad)):
        b_lp = None if b is None else b.to(x.dtype)
        return _conv_lrelu_forward(x, w.to(x.dtype), b_lp, stride, padding, slope, clamp)
    return _Conv2dLReLU.apply(x, w, b, stride, padding, slope, clamp)


def lrelu_clamp_backward(gy: torch.Tensor, y: torch.Tensor, slope: float, clamp: float | None) -> torch.Tensor:
    """The gradient through y = clamp(leaky_relu(z), -clamp, clamp), from the output y alone.

    Both masks come from y: leaky ReLU keeps the sign, and the clamp bound is reached only where the clamp acted.
    Differentiable in gy (aten's backward ops have their own derivatives), so R1's and path length's double
    backward go through it.
    """
    if clamp is not None:
        gy = torch.ops.aten.hardtanh_backward(gy, y, -clamp, clamp)
    return torch.ops.aten.leaky_relu_backward(gy, y, slope, True)


def _conv_lrelu_forward(x, w_lp, b_lp, stride, padding, slope, clamp):
    if clamp is None:
        y = torch.ops.mkldnn._convolution_pointwise(x, w_lp, b_lp, list(_pair(padding)), list(_pair(stride)), [1, 1], 1,
                                                    "none", [], "")
    else:
        y = torch.ops.mkldnn._convolution_pointwise(x, w_lp, b_lp, list(_pair(padding)), list(_pair(stride)), [1, 1], 1,
                                                    "hardtanh", [-clamp / slope, clamp], "")
    return F.leaky_relu_(y, slope)


class _Conv2dLReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, slope, clamp):  # noqa: D102
        w_lp = w.to(x.dtype)
        y = _conv_lrelu_forward(x, w_lp, None if b is None else b.to(x.dtype), stride, padding, slope, clamp)
        ctx.save_for_backward(x, w, w_lp, y)
        ctx.conf = (stride, padding, slope, clamp, b is not None)
        return y

    @staticmethod
    def backward(ctx, gy):  # noqa: D102
        x, w, w_lp, y = ctx.saved_tensors
        stride, padding, slope, clamp, has_bias = ctx.conf
        gz = lrelu_clamp_backward(gy, y, slope, clamp)
        return (*_conv2d_backward(ctx.needs_input_grad, x, w, w_lp, gz, stride, padding, 1, has_bias),
                None, None, None, None)


class _ConvTranspose2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, stride, padding, output_padding, groups):  # noqa: D102
        w_lp = w.to(x.dtype)
        ctx.save_for_backward(x, w, w_lp)
        ctx.conf = (stride, padding, groups)
        return F.conv_transpose2d(x, w_lp, None, stride, padding, output_padding, groups)

    @staticmethod
    def backward(ctx, gy):  # noqa: D102
        x, w, w_lp = ctx.saved_tensors
        stride, padding, groups = ctx.conf
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = (conv2d(gy, w, None, stride, padding, groups) if torch.is_grad_enabled()
                  else F.conv2d(gy, w_lp, None, stride, padding, 1, groups))
        if ctx.needs_input_grad[1]:
            # <convT(x, w), gy> = <x, conv(gy, w)>: the weight gradient of conv(gy, .) against x.
            gw = _weight_grad(gy, w.shape, x, stride, padding, groups)
        return gx, gw, None, None, None, None
