"""Synthesis network: a learned constant grown by modulated convolutions to an RGB image (skip architecture)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..precision import float32_region
from .config import NetworkConfig
from .conv import _under_cpu_bf16_autocast
from .layers import (FullyConnected, LRELU_GAIN, _conv, bias_act, demod_coefficients, fir_taps, modulated_conv2d,
                     polyphase_weight, WeightsCacheMixin, transposed_weight, upsample2d, weights_cached)

NOISE_MODES = ("random", "const", "none")


@dataclass(frozen=True)
class StyleLayer:
    """A layer that reads one w: its index in ws, its name and its affine (w -> per-channel style) layer."""

    ws_index: int
    name: str
    affine: FullyConnected


def _cpu_bf16(x: torch.Tensor) -> bool:
    """bf16 maps on a CPU (inference runs them channels-last, upsampling in polyphase form where it pays)."""
    return _under_cpu_bf16_autocast(x).dtype == torch.bfloat16 and x.device.type == "cpu"


class SynthesisLayer(WeightsCacheMixin, nn.Module):
    """Modulated 3x3 conv (+ optional 2x upsampling), per-pixel noise with learned strength, bias, lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, size: tuple[int, int], up: bool = False,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.up, self.conv_clamp = up, conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(size))
        self.register_buffer("resample_filter", fir_taps(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused: bool = False,
                styles: torch.Tensor | None = None) -> torch.Tensor:
        if styles is None:
            with float32_region(w.device.type):
                styles = self.affine(w)
        noise = None
        if noise_mode == "random":
            h, wd = self.noise_const.shape
            noise = torch.randn(x.shape[0], 1, h, wd, device=x.device, dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        if not torch.is_grad_enabled():
            return self._forward_inference(x, styles, noise)
        if fused:
            x = modulated_conv2d(x, self.weight, styles, demodulate=True, up=self.up, noise=noise,
                                 resample_filter=self.resample_filter, fused=True)
            return bias_act(x, self.bias, "lrelu", gain=LRELU_GAIN, clamp=self.conv_clamp)
        return self._forward_train(x, styles, noise)

    def _forward_train(self, x: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """modulated_conv2d + bias_act in fewer passes over the map (the training hot path).

        (conv * d + noise + b) * g == conv * (d * g) + noise * g + b * g, and lrelu commutes with g > 0: one
        addcmul, one bias add, lrelu and the clamp, against six passes (and six backward passes) written plainly.
        """
        n = x.shape[0]
        with float32_region(x.device.type):
            dcoefs = demod_coefficients(self.weight, styles.float()) * LRELU_GAIN
        # (Not the polyphase form: its backward, a transposed 2x2 conv and a weight gradient with 4x the output
        # channels, made the G phase 8% slower than the transposed conv's strided-conv backward.)
        y = _conv(x * styles.to(x.dtype).reshape(n, -1, 1, 1), self.weight, self.up, groups=1,
                  resample_filter=self.resample_filter)
        d = dcoefs.to(y.dtype).reshape(n, -1, 1, 1)
        y = torch.addcmul((noise * LRELU_GAIN).to(y.dtype), y, d) if noise is not None else y * d
        return bias_act(y, self.bias * LRELU_GAIN, "lrelu", clamp=self.conv_clamp)

    def _forward_inference(self, x: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """Same arithmetic with fewer passes over memory (no autograd, so in-place is safe).

        (conv * d + noise + bias) * g == conv * (d * g) + (noise + bias) * g, and lrelu commutes with g > 0, so
        demodulation, noise, bias and gain become one addcmul; activation and clamp run in place. What depends on
        the weights alone (their squared taps, their copy in the compute dtype, the transposed form for
        upsampling) is made once per weight version, not per call: at the low resolutions of one editor image
        the weights are 10-100x larger than the activations, and those passes were half of a render's time.
        A single image folds its style into the weights only where the activations are the larger of the two.
        """
        n = x.shape[0]
        x = _under_cpu_bf16_autocast(x)
        # bf16 on CPUs runs channels-last: oneDNN's kernels work in it, and default-layout maps were reordered
        # into it and back around every convolution (a third of a paper256 render).
        cl = _cpu_bf16(x)
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        # Polyphase pays where the channels are many for the map's size (bf16, 2 threads, batch 1-8: 1.3-1.9x at
        # 128-512 input channels from 8x8 up); the transposed conv stays faster at 4x4 and at 64 channels.
        poly = cl and self.up and x.shape[1] >= 128 and x.shape[2] * x.shape[3] >= 48
        weight, wsq, wt, wp = self._frozen(x.dtype, cl, poly)
        out_c, _, kh, kw = weight.shape
        with float32_region(x.device.type):
            dcoefs = demod_coefficients(weight, styles.float(), wsq) * LRELU_GAIN
        # (in bf16 the fold would round differently from a batch)
        if n == 1 and x.dtype == torch.float32 and out_c * kh * kw < x.shape[2] * x.shape[3]:
            y = _conv(x, weight * styles.reshape(1, -1, 1, 1), self.up, groups=1, resample_filter=self.resample_filter)
        else:
            y = _conv(x * styles.to(x.dtype).reshape(n, -1, 1, 1), weight, self.up, groups=1,
                      resample_filter=self.resample_filter, wt=wt, wp=wp)
        offset = self.bias.reshape(1, -1, 1, 1) * LRELU_GAIN
        if noise is not None:
            offset = offset + noise * LRELU_GAIN
        # In y's dtype (bf16 under autocast): float32 offsets would promote the whole map. In y's layout too: an
        # element-wise op over mixed layouts runs 3x slower and returns the first operand's layout.
        offset = offset.to(y.dtype)
        if cl and offset.ndim == 4:
            offset = offset.contiguous(memory_format=torch.channels_last)
        y = torch.addcmul(offset, y, dcoefs.to(y.dtype).reshape(n, out_c, 1, 1))
        torch.nn.functional.leaky_relu_(y, 0.2)
        if self.conv_clamp is not None:
            y.clamp_(-self.conv_clamp, self.conv_clamp)
        return y

    def _frozen(self, dtype: torch.dtype, channels_last: bool = False, polyphase: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(weight in `dtype`, its squared taps summed [O, I] in float32, and when upsampling its transposed form and
        with `polyphase` its polyphase form; the convolutions' weights in the maps' layout)."""
        def build():
            w = self.weight.detach()
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            wd = w.to(dtype).contiguous(memory_format=fmt)
            wt = transposed_weight(wd).contiguous(memory_format=fmt) if self.up else None
            wp = polyphase_weight(wd).contiguous(memory_format=fmt) if self.up and polyphase else None
            return wd, w.float().square().sum(dim=[2, 3]), wt, wp
        return weights_cached(self, (self.weight,), (dtype, channels_last, polyphase), build)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to RGB, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = False,
                styles: torch.Tensor | None = None) -> torch.Tensor:
        if styles is None:
            with float32_region(w.device.type):
                styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles * self.weight_gain, demodulate=False, fused=fused)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (upsampling conv0,) conv1 and a toRGB whose output is added to the upsampled image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, size: tuple[int, int], img_channels: int,
                 conv_clamp: float | None) -> None:
        super().__init__()
        self.in_channels = in_channels
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, *size))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, size, up=True, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, size, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.register_buffer("resample_filter", fir_taps(), persistent=False)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str,
                fused: bool = False, styles: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ws [N, num_conv + 1, w_dim]: one w per conv and one for toRGB (shared with the next block's first conv)."""
        s = styles or [None] * (self.num_conv + 1)
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], *self.const.shape)
            x = self.conv1(x, ws[:, 0], noise_mode, fused, s[0])
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, fused, s[0])
            x = self.conv1(x, ws[:, 1], noise_mode, fused, s[1])
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        # The image skip sums stay float32 (3 channels: cheap), as the reference keeps its RGB in fp32 under fp16.
        y = self.torgb(x, ws[:, self.num_conv], fused, s[self.num_conv]).float()
        return x, (img + y if img is not None else y)


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, C, H, W]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.block_resolutions = cfg.block_resolutions
        bh, bw = cfg.base_size
        self.num_ws = 0
        for res in self.block_resolutions:
            in_c = cfg.channels(res // 2) if res > 4 else 0
            size = (bh * res // 4, bw * res // 4)
            block = SynthesisBlock(in_c, cfg.channels(res), cfg.w_dim, size, cfg.img_channels, cfg.conv_clamp)
            self.add_module(f"b{res}", block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last toRGB

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def style_layers(self) -> list[StyleLayer]:
        """Every layer that reads a w, in ws order (the toRGB of a block shares its w with the next conv)."""
        out: list[StyleLayer] = []
        idx = 0
        for res, block in zip(self.block_resolutions, self.blocks()):
            if block.in_channels:
                out.append(StyleLayer(idx, f"b{res}.conv0", block.conv0.affine))
            out.append(StyleLayer(idx + block.num_conv - 1, f"b{res}.conv1", block.conv1.affine))
            out.append(StyleLayer(idx + block.num_conv, f"b{res}.torgb", block.torgb.affine))
            idx += block.num_conv
        return out

    def compute_styles(self, ws: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per-block lists of style vectors (affine(w)), so renderers can cache them between edits."""
        styles, idx = [], 0
        for block in self.blocks():
            layers = ([block.conv0] if block.in_channels else []) + [block.conv1, block.torgb]
            with float32_region(ws.device.type):
                styles.append([layer.affine(ws[:, idx + j]) for j, layer in enumerate(layers)])
            idx += block.num_conv
        return styles

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused: bool = False,
                styles: list[list[torch.Tensor]] | None = None) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if ws.shape[1] != self.num_ws:
            raise ValueError(f"expected ws with {self.num_ws} layers, got {ws.shape[1]}")
        ws = ws.to(torch.float32)
        x = img = None
        idx = 0
        for i, block in enumerate(self.blocks()):
            block_ws = ws[:, idx: idx + block.num_conv + 1]
            x, img = block(x, img, block_ws, noise_mode, fused, styles[i] if styles is not None else None)
            idx += block.num_conv
        return img
