"""Mixed precision for a training run: how the networks are laid out and which dtype each phase computes in.

One object per run, made from `cfg.precision` and the device:

    mp = MixedPrecision.for_run(cfg.precision, device)   # resolves auto -> bf16 on native-bf16 CPUs / CUDA
    mp.setup(G, D, G_ema)                                 # before the optimisers are built
    with mp.phase():                                      # around each phase's forward (and R1 / path-length grads)
        loss, ... = loss_fn.g_main(z, c)
    loss.backward()                                       # outside: gradients land in the float32 masters

bf16: every phase runs under bf16 autocast with channels-last maps (oneDNN's fast layout; the FIR resampling then
runs as depthwise convolutions, see nets/layers.py). What stays float32 whatever is chosen: master weights, Adam
state, G_ema, the mapping network, styles and demodulation, minibatch statistics, the RGB skip sums, logits and
every loss reduction, R1 and path-length penalties. fp16 (CUDA only): the reference's scheme, fp16 in the 4
highest-resolution blocks of G and D (activations clamped by conv_clamp), the rest float32. fp32: unchanged.

Checkpoints do not depend on any of this: parameters stay float32 and safetensors stores the logical layout.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from ..precision import autocast, resolve_precision


@dataclass(frozen=True)
class MixedPrecision:
    """A run's resolved precision ('fp32' | 'bf16' | 'fp16') on its device."""

    precision: str
    device: torch.device

    @classmethod
    def for_run(cls, requested: str, device: torch.device | str) -> "MixedPrecision":
        """Resolve a TrainConfig.precision value for a device (ValueError with one line if it cannot run)."""
        device = torch.device(device)
        return cls(resolve_precision(requested, device), device)

    @property
    def channels_last(self) -> bool:
        """Whether 4-D weights and maps are kept channels-last (the low-precision paths only: fp32 stays as is)."""
        return self.precision in ("bf16", "fp16")

    def setup(self, G: torch.nn.Module, D: torch.nn.Module, G_ema: torch.nn.Module | None = None) -> None:
        """Lay out the networks for this precision, in place (Parameter objects are kept, so call it before or
        after building optimisers, but before their first step)."""
        nets = [m for m in (G, D, G_ema) if m is not None]
        if self.channels_last:
            for m in nets:
                m.to(memory_format=torch.channels_last)
        if self.precision == "fp16":
            blocks = list(G.synthesis.blocks()[-4:]) + list(D.blocks[:4])
            if G_ema is not None:
                blocks += list(G_ema.synthesis.blocks()[-4:])
            enable_low_precision(blocks, self.device.type, torch.float16)

    def phase(self) -> contextlib.AbstractContextManager:
        """The autocast context for one phase's forward pass (a no-op for fp32 and for fp16, whose blocks
        carry their own)."""
        if self.precision == "bf16":
            return autocast("bf16", self.device)
        return contextlib.nullcontext()


def enable_low_precision(modules: list[torch.nn.Module], device_type: str, dtype: torch.dtype) -> None:
    """Run these modules under autocast to `dtype` and hand float32 back, so only they compute in low precision.

    The reference's mixed precision: its 4 highest-resolution blocks of G and D (where most FLOPs are) in fp16.
    """

    def wrap(module: torch.nn.Module) -> None:
        inner = module.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            with torch.autocast(device_type, dtype=dtype):
                out = inner(*args, **kwargs)
            if isinstance(out, tuple):
                return tuple(o.float() if torch.is_tensor(o) else o for o in out)
            return out.float() if torch.is_tensor(out) else out

        module.forward = forward  # type: ignore[method-assign]

    for m in modules:
        wrap(m)

