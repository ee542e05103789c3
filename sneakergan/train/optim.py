"""Optimisers, Freeze-D and the generator's moving average (pure helpers used by the loop)."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError
from ..modelfile import ModelFileError


def make_adam(params: list[torch.nn.Parameter], lr: float, reg_interval: int | None) -> torch.optim.Adam:
    """Adam(0, 0.99), eps 1e-8, with StyleGAN2's lazy-regularisation correction of lr and betas.

    Each lazy regulariser step is an extra optimiser step, so lr and betas are scaled by
    interval / (interval + 1) (StyleGAN2, appendix B).
    """
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    kwargs: dict[str, Any] = dict(lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, foreach=True, **kwargs)


def restore_optimizer(ckpt: Any, name: str, opt: torch.optim.Optimizer) -> None:
    """Load `opt_{name}` from a checkpoint, with each moment in its parameter's memory layout.

    The checkpoint gives moments and step counts; lr and betas stay `opt`'s own, i.e. the run's config (a resume
    with `--lr X` means X: `load_state_dict` would otherwise bring back the saved ones).
    The fused Adam kernel walks parameter and moments side by side and silently mixes elements up when their
    strides differ (a resume test caught it with channels_last parameters).
    """
    hyper = [{k: g[k] for k in ("lr", "betas")} for g in opt.param_groups]
    try:
        ckpt.load_optimizer(name, opt)
    except ModelFileError as e:
        raise UserError(str(e)) from None
    for group, h in zip(opt.param_groups, hyper):
        group.update(h)
    for group in opt.param_groups:
        for p in group["params"]:
            for key, t in opt.state.get(p, {}).items():
                if torch.is_tensor(t) and t.shape == p.shape and t.stride() != p.stride():
                    opt.state[p][key] = torch.empty_like(p).copy_(t)


def freeze_d_blocks(D: torch.nn.Module, k: int) -> list[torch.nn.Parameter]:
    """Freeze-D (Mo et al. 2020): keep the first k blocks (highest resolution) fixed; returns trainable params."""
    blocks = D.blocks
    if k > len(blocks):
        raise UserError(f"--freeze-d {k}: the discriminator has only {len(blocks)} blocks")
    frozen = {id(p) for b in blocks[:k] for p in b.parameters()}
    for b in blocks[:k]:
        b.requires_grad_(False)
    return [p for p in D.parameters() if id(p) not in frozen]


def ema_beta(batch: int, ema_kimg: float, ema_rampup: float | None, cur_nimg: int) -> float:
    """Per-step decay for a half-life of ema_kimg thousand images, ramped up early (the reference's rule)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; buffers (w_avg, noise) copied."""
    torch._foreach_lerp_(list(G_ema.parameters()), [p.detach() for p in G.parameters()], 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)
