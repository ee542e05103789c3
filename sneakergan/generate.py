"""Seeds -> z -> images: the reference tools' seed convention, batching, uint8 conversion and grids."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image

from .modelfile import load_checkpoint
from .nets import Generator
from .precision import autocast, resolve_precision

MAX_SEED = 2**32 - 1


def resolve_device(spec: str = "auto") -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when present, else CPU; never fails on a CPU-only machine)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available on this machine (use cpu or auto)")
    return dev


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """z for a seed, as the reference's generate.py: RandomState(seed).randn(1, z_dim) (float64 -> float32 later)."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in [0, 2^32), got {seed}")
    return np.random.RandomState(int(seed)).randn(1, z_dim)


def seeds_to_z(seeds: Iterable[int], z_dim: int) -> torch.Tensor:
    """Stack the z of several seeds into a float32 tensor [N, z_dim]."""
    return torch.from_numpy(np.concatenate([seed_to_z(s, z_dim) for s in seeds])).float()


def parse_seeds(spec: str) -> list[int]:
    """'0-99,120,200-203' -> [0, ..., 99, 120, 200, ..., 203]."""
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"seed range {part!r} runs backwards")
            seeds.extend(range(lo, hi + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise ValueError(f"cannot read seeds {spec!r}: use numbers and ranges like 0-99,120")
    for s in seeds:
        if s > MAX_SEED:
            raise ValueError(f"seed {s} is out of range [0, 2^32)")
    if not seeds:
        raise ValueError("no seeds given")
    return seeds


def class_vector(G: Generator, class_idx: int | None, n: int, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """One-hot labels for a conditional generator (None for unconditional ones)."""
    if G.c_dim == 0:
        if class_idx is not None:
            raise ValueError("--class given but the model is unconditional")
        return None
    if class_idx is None or not 0 <= class_idx < G.c_dim:
        raise ValueError(f"the model is conditional: pass --class in [0, {G.c_dim - 1}]")
    c = torch.zeros(n, G.c_dim, device=device)
    c[:, class_idx] = 1
    return c


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """G_ema of a model file, float32, eval mode, gradients off."""
    return load_checkpoint(path, nets=("G_ema",), device=device).nets["G_ema"]


def images_to_uint8(img: torch.Tensor, invert: bool = False) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C], quantised as the reference (x * 127.5 + 128, clamp, floor)."""
    if invert:
        img = -img
    x = (img.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether a requested precision synthesises in bf16 on a device ('auto': on CPUs with native bf16 units and
    CUDA devices that support it; see sneakergan.precision)."""
    return resolve_precision(precision, device) == "bf16"


@torch.inference_mode()
def synthesize(G: Generator, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0,
               cutoff: int | None = None, noise_mode: str = "const", bf16: bool = False,
               precision: str | None = None) -> torch.Tensor:
    """Batch forward without autograd, float32 images out; CPU uses the non-fused modconv (one shared conv per layer).

    `precision` is a resolved precision ('fp32' | 'bf16' | 'fp16'); `bf16=True` is the older spelling of 'bf16'.
    The mapping, styles, demodulation and the RGB sums stay float32 under any of them (nets/).
    """
    dev = next(G.parameters()).device
    prec = precision or ("bf16" if bf16 else "fp32")
    ws = G.mapping(z.to(dev), c, psi=psi, cutoff=cutoff)
    with autocast(prec, dev):
        return G.synthesis(ws, noise_mode=noise_mode, fused=False).float()


def generate_images(G: Generator, seeds: list[int], psi: float = 1.0, noise_mode: str = "const",
                    class_idx: int | None = None, batch_size: int = 8, cutoff: int | None = None,
                    on_batch: Callable[[int], None] | None = None, bf16: bool = False,
                    precision: str | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (seed, uint8 HxWx3) for every seed. A seed's image does not depend on the batch it ran in.

    With noise_mode 'random' the noise is drawn from a generator seeded by the seed itself, so it stays reproducible.
    `precision`: a resolved precision (default fp32; `bf16=True` means 'bf16').
    """
    prec = precision or ("bf16" if bf16 else "fp32")
    dev = next(G.parameters()).device
    invert = bool(getattr(G.cfg, "invert", False))
    for i in range(0, len(seeds), batch_size):
        chunk = seeds[i: i + batch_size]
        z = seeds_to_z(chunk, G.z_dim).to(dev)
        c = class_vector(G, class_idx, len(chunk), dev)
        if noise_mode == "random":
            imgs = torch.cat([_random_noise_image(G, z[j: j + 1], None if c is None else c[j: j + 1], psi, cutoff, s,
                                                  prec) for j, s in enumerate(chunk)])
        else:
            imgs = synthesize(G, z, c, psi, cutoff, noise_mode, precision=prec)
        for seed, arr in zip(chunk, images_to_uint8(imgs, invert)):
            yield seed, arr
        if on_batch:
            on_batch(len(chunk))


def _random_noise_image(G: Generator, z: torch.Tensor, c: torch.Tensor | None, psi: float, cutoff: int | None,
                        seed: int, precision: str) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return synthesize(G, z, c, psi, cutoff, "random", precision=precision)


def make_grid(images: list[np.ndarray], cols: int | None = None, pad: int = 2, bg: int = 255) -> Image.Image:
    """A contact sheet of uint8 HxWx3 images, row-major."""
    if not images:
        raise ValueError("no images for the grid")
    n = len(images)
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    h, w = images[0].shape[:2]
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), bg, dtype=np.uint8)
    for i, im in enumerate(images):
        r, cidx = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + cidx * (w + pad)
        sheet[y: y + h, x: x + w] = im[..., :3]
    return Image.fromarray(sheet)
