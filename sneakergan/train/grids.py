"""Image grids a run writes: `reals.png` (training images, at the start) and G_ema samples at each snapshot."""

from __future__ import annotations

import math

import torch


def grid_columns(n: int) -> int:
    """A divisor of n near its square root (32 -> 8 x 4), so the grid has no ragged last row."""
    root = math.sqrt(n)
    return next((d for d in range(math.ceil(root), int(2 * root) + 1) if n % d == 0), math.ceil(root))


def fakes_grid(G_ema: torch.nn.Module, n: int, c_dim: int, invert: bool, device: torch.device):
    """G_ema from fixed seeds 0..n-1 (the same z at every snapshot), noise const, as one PIL image."""
    from ..generate import images_to_uint8, make_grid, seeds_to_z

    z = seeds_to_z(range(n), G_ema.z_dim).to(device)
    c = None
    if c_dim:
        c = torch.zeros(n, c_dim, device=device)
        c[torch.arange(n), torch.arange(n) % c_dim] = 1
    imgs = []
    with torch.inference_mode():
        for i in range(0, n, 16):
            ws = G_ema.mapping(z[i : i + 16], None if c is None else c[i : i + 16])
            imgs.append(G_ema.synthesis(ws, noise_mode="const").float().cpu())
    return make_grid(list(images_to_uint8(torch.cat(imgs), invert=invert)), cols=grid_columns(n))


def reals_grid(dataset, n: int):
    """The first n training images (fewer if the dataset is smaller) as one PIL image."""
    from ..generate import make_grid

    n = min(n, len(dataset))
    arrs = [dataset[i][0].permute(1, 2, 0).numpy() for i in range(n)]
    return make_grid(arrs, cols=grid_columns(n))
