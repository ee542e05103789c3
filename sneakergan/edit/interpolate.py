"""Interpolation between edit states and looping latent walks, written as GIF / MP4 (imageio) plus a frame strip.

Two paths between states: 'w' lerps each state's final ws (works for any state: latents, mixes, edits);
'z' slerps the seeds' z (the natural path on the Gaussian z sphere), lerps psi, and lerps what mixes and edits
add on top of the base ws, so edited states still interpolate smoothly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..generate import make_grid, seed_to_z
from .render import Renderer
from .state import EditState
from ..errors import UserError

MODES = ("w", "z")
VIDEO_SUFFIXES = (".gif", ".mp4")


class InterpolateError(UserError):
    """Bad interpolation request (too few states, z mode on a latent, unknown output format)."""


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of two vectors (norms interpolated linearly); lerp when they are parallel."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos((an * bn).sum().clamp(-1, 1))
    if omega.abs() < 1e-6:
        return torch.lerp(a, b, t)
    so = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) / so) * an + (torch.sin(t * omega) / so) * bn
    return direction * torch.lerp(a.norm(), b.norm(), t)


def _times(frames: int, endpoint: bool) -> np.ndarray:
    return np.linspace(0, 1, frames, endpoint=endpoint)


@torch.inference_mode()
def interpolate_ws(renderer: Renderer, states: Sequence[EditState], frames: int = 30, mode: str = "w",
                   loop: bool = False) -> torch.Tensor:
    """ws [F, num_ws, w_dim] along the path through `states` (`frames` per segment; `loop` returns to the first)."""
    if len(states) < 2:
        raise InterpolateError("give at least two states (or seeds) to interpolate between")
    if mode not in MODES:
        raise InterpolateError(f"mode must be one of {', '.join(MODES)}")
    if frames < 2:
        raise InterpolateError("frames per segment must be at least 2")
    pts = list(states) + ([states[0]] if loop else [])
    G = renderer.G
    out = []
    for k in range(len(pts) - 1):
        a, b = pts[k], pts[k + 1]
        last = k == len(pts) - 2 and not loop
        ts = _times(frames, endpoint=last)
        if mode == "w":
            wa, wb = renderer.ws(a), renderer.ws(b)
            out += [torch.lerp(wa, wb, float(t)) for t in ts]
            continue
        if a.seed is None or b.seed is None:
            raise InterpolateError("z interpolation needs seed states; use --mode w for projected latents")
        za = torch.from_numpy(seed_to_z(a.seed, G.z_dim)).float()[0].to(renderer.device)
        zb = torch.from_numpy(seed_to_z(b.seed, G.z_dim)).float()[0].to(renderer.device)
        da = renderer.ws(a) - renderer.base_ws(a)  # what mixes and edits add
        db = renderer.ws(b) - renderer.base_ws(b)
        zs = torch.stack([slerp(za, zb, float(t)) for t in ts])
        w = G.mapping(zs, None)
        for i, t in enumerate(ts):
            psi = a.psi + (b.psi - a.psi) * float(t)
            base = G.mapping.w_avg.lerp(w[i], psi)
            out.append(base + torch.lerp(da, db, float(t)))
    return torch.stack(out)


@torch.inference_mode()
def walk_ws(renderer: Renderer, state: EditState, frames: int = 60, radius: float = 0.5,
            walk_seed: int = 0) -> torch.Tensor:
    """A closed loop in z around the state's seed: z0 + r * sqrt(z_dim) * (cos t u + sin t v), u ⟂ v unit vectors;
    the state's mixes and edits ride along. Returns ws [frames, num_ws, w_dim]; the last frame meets the first."""
    if state.seed is None:
        raise InterpolateError("a latent walk needs a seed state")
    G = renderer.G
    z0 = torch.from_numpy(seed_to_z(state.seed, G.z_dim)).float()[0]
    rng = np.random.RandomState(walk_seed)
    q, _ = np.linalg.qr(rng.randn(G.z_dim, 2))  # two orthonormal directions
    u, v = (torch.from_numpy(q[:, i]).float() for i in range(2))
    theta = torch.from_numpy(_times(frames, endpoint=False) * 2 * np.pi).float()
    scale = radius * G.z_dim ** 0.5
    zs = z0 + scale * (torch.cos(theta)[:, None] * u + torch.sin(theta)[:, None] * v)
    delta = renderer.ws(state) - renderer.base_ws(state)
    w = G.mapping(zs.to(renderer.device), None)[:, 0]
    return G.mapping.w_avg.lerp(w, state.psi)[:, None, :] + delta


def upscale(frames: np.ndarray, size: int | None) -> np.ndarray:
    """Resize frames [F, H, W, 3] so the longer side is `size` (LANCZOS); None keeps them."""
    if not size or max(frames.shape[1:3]) == size:
        return frames
    h, w = frames.shape[1:3]
    s = size / max(h, w)
    nw, nh = max(2, round(w * s)), max(2, round(h * s))
    return np.stack([np.asarray(Image.fromarray(f).resize((nw, nh), Image.Resampling.LANCZOS)) for f in frames])


def write_video(frames: np.ndarray, path: str | Path, fps: float = 24.0) -> Path:
    """GIF (looping) or MP4 (H.264 via imageio-ffmpeg), chosen by the suffix."""
    import imageio.v2 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise InterpolateError(f"{path.name}: output must end in {' or '.join(VIDEO_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        iio.mimwrite(path, list(frames), format="GIF", duration=1000.0 / fps, loop=0)
    else:
        # yuv420p (what every player reads) needs even sides; pad by repeating the edge instead of resampling.
        h, w = frames.shape[1:3]
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        iio.mimwrite(path, list(frames), format="FFMPEG", fps=fps, codec="libx264", quality=8,
                     macro_block_size=1, pixelformat="yuv420p")
    return path


def write_strip(frames: np.ndarray, path: str | Path, count: int = 8) -> Path:
    """A one-row PNG of `count` evenly spaced frames."""
    idx = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid([frames[i] for i in idx], cols=len(idx)).save(path)
    return path
