"""Discriminator: residual blocks down to the base map, minibatch stddev, optional projection conditioning."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import NetworkConfig
from .layers import Conv2dLayer, FullyConnected, is_channels_last
from .mapping import MappingNetwork


class DiscriminatorBlock(nn.Module):
    """fromRGB (first block only), two 3x3 convs (the second downsamples), and a 1x1 residual skip."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 architecture: str, conv_clamp: float | None) -> None:
        super().__init__()
        self.in_channels, self.architecture = in_channels, architecture
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=True, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(img)
        if self.architecture == "resnet":
            # sqrt(1/2) on both branches keeps the sum at unit variance
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
            return y + x
        return self.conv1(self.conv0(x))


class MinibatchStd(nn.Module):
    """Append the average standard deviation over groups of samples as extra feature maps.

    Sample i belongs to group i % (N / G), as in the reference, so results match for the same batch order.
    """

    def __init__(self, group_size: int, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        dtype, x32 = x.dtype, x.float()  # variances in float32, whatever the activations are in
        g = min(self.group_size, n) if self.group_size > 0 else n  # 0: the whole batch is one group
        if n % g:
            raise ValueError(f"batch size {n} must be divisible by the minibatch-stddev group {g}")
        f = self.num_channels
        y = x32.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n/G, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y.to(dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """At the base map: minibatch stddev, 3x3 conv, fully connected, output (projected onto the label embedding)."""

    def __init__(self, in_channels: int, cmap_dim: int, size: tuple[int, int], mbstd_group: int, mbstd_channels: int,
                 conv_clamp: float | None) -> None:
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStd(mbstd_group, mbstd_channels) if mbstd_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnected(in_channels * size[0] * size[1], in_channels, activation="lrelu")
        self.out = FullyConnected(in_channels, cmap_dim if cmap_dim > 0 else 1)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """image [N, C, H, W] (+ labels) -> logits [N, 1]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.c_dim = cfg.c_dim
        res_list = list(reversed(cfg.block_resolutions[1:]))  # resolution .. 8
        self.block_resolutions = res_list
        for res in res_list:
            in_c = cfg.channels(res) if res < cfg.resolution else 0
            block = DiscriminatorBlock(in_c, cfg.channels(res), cfg.channels(res // 2), cfg.img_channels,
                                       cfg.d_architecture, cfg.conv_clamp)
            self.add_module(f"b{res}", block)
        cmap_dim = 0
        if cfg.c_dim > 0:
            cmap_dim = cfg.cmap_dim or cfg.channels(4)
            self.mapping = MappingNetwork(0, cfg.c_dim, cmap_dim, num_ws=None, num_layers=cfg.d_mapping_layers,
                                          w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(cfg.channels(4), cmap_dim, cfg.base_size, cfg.mbstd_group,
                                        cfg.mbstd_channels, cfg.conv_clamp)

    @property
    def blocks(self) -> list[nn.Module]:
        """Blocks from the highest resolution down, then the epilogue (Freeze-D freezes the first K)."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions] + [self.b4]

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.cfg.img_channels, self.cfg.img_height, self.cfg.img_width)
        if tuple(img.shape[1:]) != expected:
            raise ValueError(f"discriminator expects images of shape {expected}, got {tuple(img.shape[1:])}")
        if is_channels_last(self.b4.conv.weight):  # the bf16 layout (train/mixed.py): images too, so that the
            img = img.contiguous(memory_format=torch.channels_last)  # gradient of fromRGB's map is not copied
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap)
