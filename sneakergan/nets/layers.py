"""StyleGAN2 building blocks in plain PyTorch: equalised-LR layers, FIR resampling, modulated convolution.

The arithmetic follows Karras et al. 2020 (StyleGAN2) and matches the reference implementation number for number
(tests/test_import_reference.py checks it against the reference's own outputs), but the resampling is written
for speed on CPUs: the [1,3,3,1] FIR filter is separable, so up/down-sampling runs as two 1-D passes, each a small
banded matrix product on default-layout maps (no convolving of inserted zeros). Channels-last maps (the bf16 path,
train/mixed.py) run the passes as depthwise convolutions instead, which oneDNN does 2-3x faster in that layout.
Everything runs in the activations' dtype, so under bf16 autocast the maps stay bf16 between the big products.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import float32_region
from .conv import conv2d, conv2d_lrelu, conv_transpose2d, lrelu_clamp_backward

LRELU_GAIN = math.sqrt(2.0)
LRELU_SLOPE = 0.2


def fir_taps(taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0)) -> torch.Tensor:
    """The 1-D resampling filter, normalised to sum to 1 (its 2-D form is the outer product)."""
    f = torch.tensor(taps, dtype=torch.float32)
    return f / f.sum()


def bias_act(x: torch.Tensor, b: torch.Tensor | None, act: str = "linear", gain: float = 1.0,
             clamp: float | None = None) -> torch.Tensor:
    """Add a per-channel bias, apply the activation, scale by gain, clamp (in that order, as StyleGAN2).

    Runs in x's dtype: under bf16 the activations stay bf16 end to end (a float32 bias would promote them and
    every element-wise op after it would move twice the bytes).
    """
    if (act == "lrelu" and gain == 1 and b is not None and x.dtype == torch.bfloat16 and x.device.type == "cpu"
            and is_channels_last(x) and torch.is_grad_enabled()):
        return _BiasLReLU.apply(x, b, LRELU_SLOPE, clamp)
    if b is not None:
        b = b.to(x.dtype)
        x = x + (b.reshape(1, -1, 1, 1) if x.ndim == 4 else b)
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    if gain != 1:
        x = x * gain
    if clamp is not None:
        # hardtanh == clamp in value; its backward is one fused kernel, where clamp's backward runs four
        # (two comparisons, and, where), each slower than the clamp itself on CPUs.
        x = F.hardtanh(x, -clamp, clamp)
    return x


class _BiasLReLU(torch.autograd.Function):
    """clamp(leaky_relu(x + b)) for bf16 training maps: one new tensor instead of three, the same values.

    The clamp runs first, in place, at [-clamp / slope, clamp] (lrelu(clamp(z, -c / slope, c)) == clamp(lrelu(z), -c,
    c) bit for bit in bf16), then leaky ReLU in place; the backward takes both masks from the output alone.
    """

    @staticmethod
    def forward(ctx, x, b, slope, clamp):  # noqa: D102 - autograd protocol
        z = x + b.to(x.dtype).reshape(1, -1, 1, 1)
        if clamp is not None:
            z.clamp_(-clamp / slope, clamp)
        F.leaky_relu_(z, slope)
        ctx.save_for_backward(z)
        ctx.conf = (slope, clamp)
        return z

    @staticmethod
    def backward(ctx, gy):  # noqa: D102
        (z,) = ctx.saved_tensors
        gz = lrelu_clamp_backward(gy, z, *ctx.conf)
        gb = gz.sum(dim=(0, 2, 3)).float() if ctx.needs_input_grad[1] else None
        return gz, gb, None, None


def _pad_or_crop(x: torch.Tensor, px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    h, w = x.shape[2], x.shape[3]
    return x[:, :, max(-py0, 0): h - max(-py1, 0), max(-px0, 0): w - max(-px1, 0)]


# Up to this side length the 1-D resampling passes run as matrix products: depthwise convolutions (and worse,
# their backward) are slow on CPUs, while a small banded matrix product is fast on every device. Beyond it
# the O(side) cost per sample of the dense band outgrows the 4 taps of the direct convolution.
MATMUL_FIR_MAX_SIDE = 128


@functools.lru_cache(maxsize=512)
def _fir_matrix(n_in: int, up: int, down: int, pad0: int, pad1: int, taps: tuple[float, ...], gain: float,
                device: str, dtype: torch.dtype) -> torch.Tensor:
    """[n_in, n_out] matrix of one 1-D upfirdn pass: zero-insert by `up`, pad, convolve with taps, keep every `down`."""
    with torch.inference_mode(False):  # a cached tensor made under inference mode could never enter autograd
        return _build_fir_matrix(n_in, up, down, pad0, pad1, taps, gain).to(device=device, dtype=dtype)


def _build_fir_matrix(n_in: int, up: int, down: int, pad0: int, pad1: int, taps: tuple[float, ...],
                      gain: float) -> torch.Tensor:
    k = len(taps)
    n_filtered = n_in * up + pad0 + pad1 - k + 1
    n_out = (n_filtered - 1) // down + 1
    m = torch.zeros(n_in, n_out, dtype=torch.float64)
    flipped = taps[::-1]  # convolution, not correlation
    for i in range(n_in):
        for j in range(n_out):
            t = up * i + pad0 - down * j
            if 0 <= t < k:
                m[i, j] = flipped[t] * gain
    return m


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad (x0, x1, y0, y1; negative crops), filter with the separable taps f, decimate.

    The gain multiplies the 2-D filter, so it is split as sqrt(gain) per 1-D pass.
    """
    px0, px1, py0, py1 = pad
    h, w = x.shape[2], x.shape[3]
    g = math.sqrt(gain)
    if up == 1 and is_channels_last(x):
        return _fir_depthwise(x, f, down, pad, g)
    if max(h * up, w * up) <= MATMUL_FIR_MAX_SIDE:
        taps = tuple(float(t) for t in f)
        mw = _fir_matrix(w, up, down, px0, px1, taps, g, str(x.device), x.dtype)
        mh = _fir_matrix(h, up, down, py0, py1, taps, g, str(x.device), x.dtype)
        return torch.matmul(mh.t(), torch.matmul(x, mw))
    n, c = x.shape[:2]
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    fx = (f.flip(0) * g).to(x.dtype).reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    fy = (f.flip(0) * g).to(x.dtype).reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)
    if px0 == px1 >= 0 and py0 == py1 >= 0:  # symmetric: let each 1-D pass pad, no padded copy of the map
        x = F.conv2d(F.conv2d(x, fx, padding=(0, px0), groups=c), fy, padding=(py0, 0), groups=c)
    else:
        x = F.conv2d(F.conv2d(_pad_or_crop(x, px0, px1, py0, py1), fx, groups=c), fy, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D map stored channels-last (and not also plain contiguous, as maps of one channel are)."""
    return x.ndim == 4 and x.shape[1] > 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


@functools.lru_cache(maxsize=256)
def _depthwise_taps(channels: int, taps: tuple[float, ...], gain: float, horizontal: bool, device: str,
                    dtype: torch.dtype) -> torch.Tensor:
    """[C, 1, 1, k] (or [C, 1, k, 1]) weights of one 1-D FIR pass as a depthwise convolution, channels-last."""
    with torch.inference_mode(False):
        f = torch.tensor(taps[::-1], dtype=torch.float64) * gain  # convolution, not correlation
        shape = (1, 1, 1, len(taps)) if horizontal else (1, 1, len(taps), 1)
        w = f.reshape(shape).repeat(channels, 1, 1, 1).to(device=device, dtype=dtype)
        return w.contiguous(memory_format=torch.channels_last)


def _fir_depthwise(x: torch.Tensor, f: torch.Tensor, down: int, pad: tuple[int, int, int, int],
                   g: float) -> torch.Tensor:
    """The channels-last form of upfirdn2d without upsampling: two depthwise 1-D convolutions, then decimation.

    With channels-last maps (the bf16 fast path) oneDNN runs these 2-3x faster than the banded matrix
    products, forward and backward, and the map never leaves its layout.
    """
    px0, px1, py0, py1 = pad
    c = x.shape[1]
    taps = tuple(float(t) for t in f)
    wx = _depthwise_taps(c, taps, g, True, str(x.device), x.dtype)
    wy = _depthwise_taps(c, taps, g, False, str(x.device), x.dtype)
    wxf = _depthwise_taps(c, taps[::-1], g, True, str(x.device), x.dtype)
    wyf = _depthwise_taps(c, taps[::-1], g, False, str(x.device), x.dtype)
    # Decimate by slicing, not by the stride: oneDNN's backward of strided depthwise convolutions is 5-10x slower.
    if px0 == px1 >= 0 and py0 == py1 >= 0 and max(px0, py0) < len(taps):
        x = _FirPass.apply(_FirPass.apply(x, wx, wxf, (0, px0)), wy, wyf, (py0, 0))
    else:
        x = _FirPass.apply(_FirPass.apply(_pad_or_crop(x, px0, px1, py0, py1), wx, wxf, (0, 0)), wy, wyf, (0, 0))
    return x[:, :, ::down, ::down] if down > 1 else x


class _FirPass(torch.autograd.Function):
    """One 1-D FIR pass as a depthwise convolution (stride 1, constant taps `w`; `w_flipped` reversed).

    Its gradient is the same kind of pass with the taps reversed and the complementary padding, so backward and
    R1's double backward each stay one depthwise convolution. Left to autograd, the double backward of a grouped
    convolution runs one small convolution per channel: thousands per R1 step, which made bf16 R1 slower than fp32.
    """

    @staticmethod
    def forward(ctx, x, w, w_flipped, padding):  # noqa: D102 - autograd protocol
        ctx.save_for_backward(w, w_flipped)
        ctx.padding = padding
        return F.conv2d(x, w, None, 1, padding, 1, x.shape[1])

    @staticmethod
    def backward(ctx, gy):  # noqa: D102
        w, w_flipped = ctx.saved_tensors
        kh, kw = w.shape[-2:]
        ph, pw = ctx.padding
        return _FirPass.apply(gy, w_flipped, w, (kh - 1 - ph, kw - 1 - pw)), None, None, None


def fir_filter(x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int, int, int], gain: float = 1.0) -> torch.Tensor:
    """Pad (x0, x1, y0, y1; negative crops) then convolve with the separable filter f (1-D taps) on each channel."""
    return upfirdn2d(x, f, pad=pad, gain=gain)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling: zero insertion + FIR lowpass with gain 4 (the image skip connections of the synthesis)."""
    k = f.numel()
    p0, p1 = (k + 1) // 2, (k - 2) // 2
    return upfirdn2d(x, f, up=2, pad=(p0, p1, p0, p1), gain=4.0)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x downsampling: FIR lowpass then keep every second pixel."""
    k = f.numel()
    p0, p1 = (k - 1) // 2, (k - 2) // 2
    return upfirdn2d(x, f, down=2, pad=(p0, p1, p0, p1))


def weights_cached(module: nn.Module, params: tuple[torch.Tensor | None, ...], tag: Any, build: Callable[[], Any]) -> Any:
    """`build()` once per version of `params` (inference only): what a layer derives from its weights alone.

    The key is each parameter's version counter (an optimiser step or a load bumps it), storage and device, plus
    `tag` (e.g. the compute dtype), so a changed, reloaded or moved weight is never served stale. The cache is a
    plain attribute: it is not part of the state dict and copies (`__getstate__` below) do not carry it.
    """
    key = (tag,) + tuple(None if p is None else (p._version, p.data_ptr(), p.device) for p in params)
    hit = module.__dict__.get("_weights_cache")
    if hit is None or hit[0] != key:
        with torch.no_grad():
            hit = (key, build())
        module.__dict__["_weights_cache"] = hit
    return hit[1]


class WeightsCacheMixin:
    """Copies and pickles of a module never carry its `weights_cached` entry."""

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state.pop("_weights_cache", None)
        return state


class FullyConnected(WeightsCacheMixin, nn.Module):
    """Equalised-learning-rate linear layer: weights stored as N(0, 1)/lr_mult, scaled at run time."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_multiplier: float = 1.0, activation: str = "linear") -> None:
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            w, b = self._scaled()
        else:  # the scaled weights of a mapping layer are as large as a small batch's whole work
            w, b = weights_cached(self, (self.weight, self.bias), None, self._scaled)
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, self.activation, gain=LRELU_GAIN if self.activation == "lrelu" else 1.0)

    def _scaled(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        b = self.bias
        if b is not None and self.bias_gain != 1:
            b = b * self.bias_gain
        return self.weight * self.weight_gain, b

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate convolution with optional 2x FIR down-sampling (the discriminator's layers)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: bool = False, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.act_gain = LRELU_GAIN if activation == "lrelu" else 1.0
        self.register_buffer("resample_filter", fir_taps(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        # bias_act(conv(x, w), b, act, g) == act(conv(x, w * g) + b * g) for g > 0 (lrelu is positively
        # homogeneous): gain and bias ride along in the convolution instead of two more passes over the map.
        g = self.act_gain * gain
        w = self.weight * (self.weight_gain * g)
        b = self.bias * g if self.bias is not None else None
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        k = w.shape[-1]
        if self.down and k == 1 and is_channels_last(x):
            # Lowpass, then let the 1x1 conv's stride decimate: the same samples as slicing first (and the same
            # FLOPs), without a strided view that forward and weight gradient copy and a slice backward that
            # zero-fills a full-size map.
            kf = self.resample_filter.numel()
            x = fir_filter(x, self.resample_filter, ((kf - 1) // 2, (kf - 2) // 2, (kf - 1) // 2, (kf - 2) // 2))
            x = conv2d(x, w, b, stride=2)
        elif self.down and k == 1:
            x = downsample2d(x, self.resample_filter)  # cheaper to shrink first, then mix channels
            x = conv2d(x, w, b)
        else:
            stride, padding = 1, self.padding
            if self.down:
                # lowpass with padding so that the stride-2 conv lands on the reference's sample grid
                p = self.padding + 1
                x = fir_filter(x, self.resample_filter, (p, p, p, p))
                stride, padding = 2, 0
            if self.activation == "lrelu":
                y = conv2d_lrelu(x, w, b, stride, padding, LRELU_SLOPE, clamp)
                if y is not None:
                    return y
            x = conv2d(x, w, b, stride=stride, padding=padding)
        return bias_act(x, None, self.activation, clamp=clamp)


def demod_coefficients(weight: torch.Tensor, styles: torch.Tensor, wsq: torch.Tensor | None = None) -> torch.Tensor:
    """1 / ||w'|| per sample and output channel, where w' = w * style (StyleGAN2's demodulation), as [N, O].

    `wsq`: the weight's squared taps summed per (out, in) channel, when the caller already has them."""
    if wsq is None:
        wsq = weight.square().sum(dim=[2, 3])  # [O, I]
    return (styles.square().matmul(wsq.t()) + 1e-8).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     up: bool = False, noise: torch.Tensor | None = None,
                     resample_filter: torch.Tensor | None = None, fused: bool = False) -> torch.Tensor:
    """Modulated (and demodulated) convolution.

    Two mathematically equal forms: `fused=False` scales activations instead of weights, so the whole batch shares
    one ordinary convolution (fastest on CPU and what training uses); `fused=True` builds per-sample weights and
    runs a grouped convolution (fewer passes over activations, useful for batch 1 on GPU).
    """
    n = x.shape[0]
    out_c, in_c, kh, kw = weight.shape
    with float32_region(x.device.type):
        dcoefs = demod_coefficients(weight, styles.float()) if demodulate else None
    if fused:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, in_c, 1, 1)
        if dcoefs is not None:
            w = w * dcoefs.reshape(n, out_c, 1, 1, 1)
        x = x.reshape(1, n * in_c, *x.shape[2:])
        w = w.reshape(n * out_c, in_c, kh, kw)
        x = _conv(x, w, up, groups=n, resample_filter=resample_filter)
        x = x.reshape(n, out_c, *x.shape[2:])
        return x + noise.to(x.dtype) if noise is not None else x
    # Styles and demodulation are computed in float32 (small) and applied in the activations' dtype.
    x = x * styles.to(x.dtype).reshape(n, in_c, 1, 1)
    x = _conv(x, weight, up, groups=1, resample_filter=resample_filter)
    if dcoefs is not None:
        x = x * dcoefs.to(x.dtype).reshape(n, out_c, 1, 1)
    return x + noise.to(x.dtype) if noise is not None else x


def transposed_weight(w: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """A conv weight [O, I, k, k] as the [I, O/groups, k, k] weight of the transposed conv `_conv` upsamples with."""
    o, i, k = w.shape[0], w.shape[1], w.shape[-1]
    return w.reshape(groups, o // groups, i, k, k).transpose(1, 2).reshape(groups * i, o // groups, k, k)


def polyphase_weight(w: torch.Tensor) -> torch.Tensor:
    """A 3x3 conv weight [O, I, 3, 3] as the [4 O, I, 2, 2] weight of `_conv`'s polyphase upsampling.

    The stride-2 transposed convolution with w computes output pixel (2m + a, 2n + b) from inputs (m - 1 + dy,
    n - 1 + dx), dy, dx in {0, 1}, through tap (ky, kx) with ky = 2, 0 for a = 0 and dy = 0, 1, ky = 1 for a = 1 and
    dy = 1, none for a = 1 and dy = 0 (kx likewise). One ordinary 2x2 convolution with padding 1 and the four phases
    (a, b) as output channels o * 4 + a * 2 + b therefore gives all of it; pixel_shuffle interleaves the phases.
    """
    o, i = w.shape[:2]
    # One gather (differentiable, so training can use it too): index 9 is an appended zero.
    flat = torch.cat([w.reshape(o, i, 9), w.new_zeros(o, i, 1)], dim=2)
    k = flat.index_select(2, _POLYPHASE_INDEX.to(w.device)).reshape(o, i, 2, 2, 2, 2)  # [O, I, a, b, dy, dx]
    return k.permute(0, 2, 3, 1, 4, 5).reshape(4 * o, i, 2, 2)


def _polyphase_index() -> torch.Tensor:
    taps = {(0, 0): 2, (0, 1): 0, (1, 1): 1}  # (phase, d) -> kernel tap; (1, 0) has none
    idx = [3 * taps[(a, dy)] + taps[(b, dx)] if (a, dy) in taps and (b, dx) in taps else 9
           for a in (0, 1) for b in (0, 1) for dy in (0, 1) for dx in (0, 1)]
    return torch.tensor(idx)


_POLYPHASE_INDEX = _polyphase_index()


def _conv(x: torch.Tensor, w: torch.Tensor, up: bool, groups: int, resample_filter: torch.Tensor | None,
          wt: torch.Tensor | None = None, wp: torch.Tensor | None = None) -> torch.Tensor:
    """3x3 (or kxk) convolution of x with w; `up`: 2x upsampling on the way (`wt`: w already transposed for it;
    `wp`: its `polyphase_weight`, which selects the polyphase form)."""
    k = w.shape[-1]
    if not up:
        return conv2d(x, w, padding=k // 2, groups=groups)
    f = resample_filter
    ft = f.numel()
    if wp is not None:
        # The same samples as the transposed conv below, from one ordinary convolution: oneDNN's bf16 transposed
        # kernel ran at 80-160 GFLOP/s, the 2x2 one with 4x the output channels several times faster (channels-last).
        x = F.pixel_shuffle(conv2d(x, wp, padding=1), 2)  # [N, O, 2H + 2, 2W + 2]: the transposed conv's 2H + 1,
        p0 = (ft + 1) // 2 + k // 2 - (k - 1)  # then one row and column of exact zeros (phase 1 has no tap there)
        p1 = (ft - 2) // 2 + k // 2 - (k - 2) - 1
        return fir_filter(x, f, (p0, p1, p0, p1), gain=4.0)
    # Upsampling 3x3 conv: a stride-2 transposed conv (weights as [in, out/groups, k, k]) then a FIR lowpass with gain 4.
    if wt is None:
        wt = transposed_weight(w, groups)
    x = conv_transpose2d(x, wt, stride=2, groups=groups)
    # The transposed conv yields 2H + k - 2 samples; pad/crop so the lowpass output is exactly 2H.
    p0 = (ft + 1) // 2 + k // 2 - (k - 1)
    p1 = (ft - 2) // 2 + k // 2 - (k - 2)
    return fir_filter(x, f, (p0, p1, p0, p1), gain=4.0)
