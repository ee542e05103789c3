"""Generator = mapping network + synthesis network."""

from __future__ import annotations

import torch
from torch import nn

from .config import NetworkConfig
from .mapping import MappingNetwork
from .synthesis import SynthesisNetwork


class Generator(nn.Module):
    """z [N, z_dim] (+ one-hot labels c) -> image [N, C, H, W] in about [-1, 1]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.w_dim, self.c_dim = cfg.z_dim, cfg.w_dim, cfg.c_dim
        self.img_channels, self.img_height, self.img_width = cfg.img_channels, cfg.img_height, cfg.img_width
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, cfg.mapping_layers,
                                      cfg.mapping_lr_multiplier, cfg.w_avg_beta)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0, cutoff: int | None = None,
                noise_mode: str = "random", update_w_avg: bool = False) -> torch.Tensor:
        ws = self.mapping(z, c, psi=psi, cutoff=cutoff, update_w_avg=update_w_avg)
        return self.synthesis(ws, noise_mode=noise_mode)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (what the reference's summaries count)."""
    return sum(p.numel() for p in module.parameters())
