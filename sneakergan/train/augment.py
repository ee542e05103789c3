"""Adaptive discriminator augmentation (Karras et al. 2020, "Training GANs with Limited Data").

Every image the discriminator sees (real or generated, in D and G steps) passes through `AugmentPipe`. Each
op is applied to each image independently with probability `p` (times the op's multiplier); the
distributions follow the paper's appendix and REFERENCES.md. The pipeline is differentiable, so G learns
through it, and "non-leaking": every op is invertible in distribution, so G cannot learn the augmentations.

Stages, in order:
  blit    x-flip, 90-degree rotations, integer translation: an exact pixel gather with mirror edges.
  geom    isotropic scale, rotation, anisotropic scale, fractional translation: composed into one 3x3
          matrix per image, then mirror-padded, 2x upsampled with a windowed-sinc (Lanczos-3) filter,
          bilinearly resampled at twice the resolution and low-passed back down, so resampling does not
          alias and the padding does not leak edges into the image.
  color   brightness, contrast, luma flip, hue rotation, saturation: one 4x4 matrix per image on RGB.
  filter  random gains of four frequency bands (FFT of the mirror-extended image), energy-normalised.
  noise   additive Gaussian noise with a random per-image strength.
  cutout  a grey square (half the image side) at a random place.

`AdaController` implements the overfitting heuristic r_t = E[sign(D(real))] that moves p toward a target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

# The reference's pipe names and which op multipliers they switch on.
_BLIT = {"xflip": 1, "rotate90": 1, "xint": 1}
_GEOM = {"scale": 1, "rotate": 1, "aniso": 1, "xfrac": 1}
_COLOR = {"brightness": 1, "contrast": 1, "lumaflip": 1, "hue": 1, "saturation": 1}
_FILTER = {"imgfilter": 1}
_NOISE = {"noise": 1}
_CUTOUT = {"cutout": 1}
AUGPIPES: dict[str, dict[str, float]] = {
    "blit": _BLIT,
    "geom": _GEOM,
    "color": _COLOR,
    "filter": _FILTER,
    "noise": _NOISE,
    "cutout": _CUTOUT,
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, **_FILTER},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE, **_CUTOUT},
}


@dataclass(frozen=True)
class AugmentSpec:
    """Which ops are on (multipliers of p) and how strong they are (the paper's defaults)."""

    xflip: float = 0
    rotate90: float = 0
    xint: float = 0
    scale: float = 0
    rotate: float = 0
    aniso: float = 0
    xfrac: float = 0
    brightness: float = 0
    contrast: float = 0
    lumaflip: float = 0
    hue: float = 0
    saturation: float = 0
    imgfilter: float = 0
    noise: float = 0
    cutout: float = 0
    xint_max: float = 0.125  # fraction of the image side
    scale_std: float = 0.2  # log2
    rotate_max: float = 1.0  # fraction of a full circle
    aniso_std: float = 0.2  # log2
    xfrac_std: float = 0.125  # fraction of the image side
    brightness_std: float = 0.2
    contrast_std: float = 0.5  # log2
    hue_max: float = 1.0  # fraction of a full circle
    saturation_std: float = 1.0  # log2
    imgfilter_std: float = 1.0  # log2 gain per band
    imgfilter_bands: tuple[float, float, float, float] = (1, 1, 1, 1)
    noise_std: float = 0.1
    cutout_size: float = 0.5  # fraction of the image side

    @classmethod
    def from_pipe(cls, name: str) -> "AugmentSpec":
        """The spec of a named pipe (blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc)."""
        if name not in AUGPIPES:
            raise ValueError(f"unknown augment pipe {name!r}; choose one of {', '.join(AUGPIPES)}")
        return cls(**AUGPIPES[name])


# -- resampling filters ---------------------------------------------------------------------------------

_LANCZOS_RADIUS = 3


def _lanczos(t: np.ndarray, radius: int = _LANCZOS_RADIUS) -> np.ndarray:
    return np.where(np.abs(t) < radius, np.sinc(t) * np.sinc(t / radius), 0.0)


def _up_phases(radius: int = _LANCZOS_RADIUS) -> np.ndarray:
    """[2, 2R+1] correlation kernels (padding R) for the outputs at +0.25 and +0.75 of each input pixel."""
    d = np.arange(-radius, radius + 1)  # input offset of each tap
    even = _lanczos(-0.25 - d, radius)
    odd = _lanczos(0.25 - d, radius)
    return np.stack([even / even.sum(), odd / odd.sum()])


def _down_kernel(radius: int = _LANCZOS_RADIUS) -> np.ndarray:
    """[4R] stride-2 low-pass kernel: taps at +-0.25, +-0.75, ... output pixels, cutoff at output Nyquist."""
    m = np.arange(4 * radius)
    k = _lanczos((m - (4 * radius - 1) / 2) / 2, radius)
    return k / k.sum()


def _reflect_index(i, size: int):
    """Mirror integer pixel indices into [0, size) (edge pixel not repeated, like F.pad 'reflect')."""
    if size == 1:
        return i * 0
    period = 2 * (size - 1)
    i = i % period
    return (size - 1) - abs(i - (size - 1))


def _reflect_coordinate(pos: np.ndarray, size: int) -> np.ndarray:
    """grid_sample's reflection of unnormalised coordinates (align_corners=False): mirror about -0.5 and size - 0.5."""
    t = np.abs(pos + np.float32(0.5))
    extra = np.fmod(t, np.float32(size))
    odd = np.floor(t / np.float32(size)) % 2 == 1
    return np.where(odd, size - extra, extra) - np.float32(0.5)


def _diag3(sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    m = np.tile(np.eye(3), (len(sx), 1, 1))
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rot3(theta: np.ndarray) -> np.ndarray:
    m = np.tile(np.eye(3), (len(theta), 1, 1))
    m[:, 0, 0], m[:, 0, 1] = np.cos(theta), -np.sin(theta)
    m[:, 1, 0], m[:, 1, 1] = np.sin(theta), np.cos(theta)
    return m


def _rotation_about_luma(theta: np.ndarray) -> np.ndarray:
    """Rodrigues rotation of RGB about the grey axis by theta (4x4, homogeneous)."""
    v = np.ones(3) / math.sqrt(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    r = np.eye(3) + np.sin(theta)[:, None, None] * k + (1 - np.cos(theta))[:, None, None] * (k @ k)
    m = np.tile(np.eye(4), (len(theta), 1, 1))
    m[:, :3, :3] = r
    return m


def _blit_maps(flip: np.ndarray, k: np.ndarray, shift: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows [N, H], cols [N, W]): out[i, j] = src[rows[i], cols[j]], src the image, transposed where k is odd.

    The ops in the paper's order: x-flip, then k quarter turns as torch.rot90 makes them (odd k only on square
    images), then a shift by (dx, dy) whole pixels with mirrored edges (output pixel j shows pixel j - dx).
    """
    n = len(k)
    r0, c0 = np.broadcast_to(np.arange(h), (n, h)), np.broadcast_to(np.arange(w), (n, w))
    f = flip[:, None]

    def fa(j: np.ndarray) -> np.ndarray:  # the column that column j of the flipped image reads
        return np.where(f, (w - 1) - j, j)

    # k = 0, 1, 2, 3 (rot90: k=1 reads x[j, w-1-i], k=2 x[h-1-i, w-1-j], k=3 x[w-1-j, i])
    rr = [r0, fa((w - 1) - r0) if h == w else r0, (h - 1) - r0, fa(r0) if h == w else r0]
    cc = [fa(c0), c0, fa((w - 1) - c0), (w - 1) - c0]
    rows = np.choose(k[:, None], rr)
    cols = np.choose(k[:, None], cc)
    rows = np.take_along_axis(rows, _reflect_index(r0 - shift[:, 1:2], h), 1)
    cols = np.take_along_axis(cols, _reflect_index(c0 - shift[:, 0:1], w), 1)
    return rows, cols


def _one_hot(index: np.ndarray, size: int) -> np.ndarray:
    """[N, L, size] float32 rows with a 1 at index[n, l]: a gather as a matrix."""
    out = np.zeros((*index.shape, size), dtype=np.float32)
    np.put_along_axis(out, index[..., None], 1.0, axis=-1)
    return out


@dataclass(frozen=True)
class _Draws:
    """One batch's random choices (NumPy, one row per image): blit parameters and the maps they make, the
    geometric output->input matrices g [N, 3, 3] and the colour matrices [N, 4, 4]."""

    flip: np.ndarray
    k: np.ndarray
    shift: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    g: np.ndarray
    color: np.ndarray


def up_matrix(size: int, pad: int, phases: np.ndarray) -> np.ndarray:
    """[2 (size + 2 pad), size]: mirror-pad by `pad`, then windowed-sinc 2x upsample, as one linear map.

    Sample n of the result sits (n + 0.5) / 2 - pad input pixels right of the image's left edge. With the
    (endlessly repeating) mirror folded into the matrix the filter taps never see an artificial edge.
    """
    r = (phases.shape[1] - 1) // 2
    mat = np.zeros((2 * (size + 2 * pad), size))
    for n in range(mat.shape[0]):
        i = n // 2 - pad
        for d in range(-r, r + 1):
            mat[n, _reflect_index(i + d, size)] += phases[n % 2, d + r]
    return mat


def down_matrix(size: int, kernel: np.ndarray) -> np.ndarray:
    """[size, 2 size + L - 2]: low-pass + decimate by 2 of the extended 2x grid (no padding needed)."""
    length = kernel.shape[0]
    mat = np.zeros((size, 2 * size + length - 2))
    for i in range(size):
        mat[i, 2 * i : 2 * i + length] = kernel
    return mat


# -- the pipeline ---------------------------------------------------------------------------------------


class AugmentPipe(torch.nn.Module):
    """Differentiable ADA augmentation of images in [-1, 1]; the probability `p` is a buffer (checkpointed)."""

    def __init__(self, spec: AugmentSpec | str = "bgc", p: float = 0.0) -> None:
        super().__init__()
        self.spec = AugmentSpec.from_pipe(spec) if isinstance(spec, str) else spec
        self.register_buffer("p", torch.tensor(float(p)))
        self._up_phases = _up_phases()
        self._down_kernel = _down_kernel()
        # resampling matrices by (kind, size, pad, device)
        self._matrices: dict[tuple, torch.Tensor | np.ndarray] = {}

    # Each helper draws, for every image, whether the op fires (prob p * multiplier) and returns that mask.
    def _fires(self, n: int, mult: float, device: torch.device, prob: torch.Tensor | None = None) -> torch.Tensor:
        prob = self.p * mult if prob is None else prob
        return torch.rand(n, device=device) < prob

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a batch [N, C, H, W]; at p = 0 it returns the input unchanged (same tensor)."""
        if float(self.p) <= 0:
            return images
        s = self.spec
        x = images
        d = self._draw(x.shape[0], x.shape[2], x.shape[3], x.device)
        if s.xflip or s.rotate90 or s.xint or s.scale or s.rotate or s.aniso or s.xfrac:
            x = self._spatial(x, d)
        if x.shape[1] == 3 and (s.brightness or s.contrast or s.lumaflip or s.hue or s.saturation):
            x = self._color(x, d)
        if s.imgfilter:
            x = self._filter(x)
        if s.noise:
            x = self._noise(x)
        if s.cutout:
            x = self._cutout(x)
        return x

    # -- the per-image parameters: drawn at once, composed on the host ----------------------------------

    def _draw(self, n: int, h: int, w: int, dev: torch.device) -> "_Draws":
        """Every random choice of the blit, geometric and colour stages for a batch of n images of H x W.

        The random numbers come from torch's generator on the images' device (seeded runs repeat) in two calls, and
        the small per-image matrices are composed in NumPy: built with torch ops, the draws alone were ~500 tiny
        kernels per call, a few ms of dispatch against ~1 ms of arithmetic.
        """
        s, p = self.spec, float(self.p)
        uni = torch.rand(n, 21, device=dev, dtype=torch.float64).cpu().numpy()
        nrm = torch.randn(n, 7, device=dev, dtype=torch.float64).cpu().numpy()
        u = iter(uni.T)
        z = iter(nrm.T)

        def fires(mult: float) -> np.ndarray:
            return next(u) < p * mult

        # blit: x-flip, k quarter turns (torch.rot90's sense; half turns only for non-square images), mirrored shift
        flip = fires(s.xflip) & (next(u) < 0.5)
        k = np.where(fires(s.rotate90), np.minimum(np.floor(next(u) * 4), 3), 0).astype(np.int64)
        if h != w:
            k = k - k % 2
        xint = fires(s.xint)
        frac = (np.stack([next(u), next(u)], 1) * 2 - 1) * s.xint_max
        shift = np.round(frac * np.array([w, h])).astype(np.int64) * xint[:, None]
        rows, cols = _blit_maps(flip, k, shift, h, w)

        # geometric: output->input matrices in centred pixel units. Every op's distribution is symmetric under
        # inversion, so composing the inverse transforms is the same as composing the forward ones.
        g = np.tile(np.eye(3), (n, 1, 1))

        def compose(m: np.ndarray, on: np.ndarray) -> None:
            nonlocal g
            g = g @ np.where(on[:, None, None], m, np.eye(3))

        sc = np.exp2(next(z) * s.scale_std)
        compose(_diag3(sc, sc), fires(s.scale))
        # Rotation is applied twice (around the anisotropic scale) with p_rot chosen so that the probability of
        # any rotation is p, as in the paper.
        p_rot = 1 - math.sqrt(min(max(1 - p * s.rotate, 0.0), 1.0)) if s.rotate else 0.0
        theta = (next(u) * 2 - 1) * math.pi * s.rotate_max
        compose(_rot3(theta), next(u) < p_rot)
        an = np.exp2(next(z) * s.aniso_std)
        compose(_diag3(an, 1 / an), fires(s.aniso))
        theta = (next(u) * 2 - 1) * math.pi * s.rotate_max
        compose(_rot3(theta), next(u) < p_rot)
        tr = np.stack([next(z) * s.xfrac_std * w, next(z) * s.xfrac_std * h], 1)
        m = np.tile(np.eye(3), (n, 1, 1))
        m[:, :2, 2] = tr
        compose(m, fires(s.xfrac))

        # colour: one 4x4 matrix per image on homogeneous RGB
        v = np.array([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)  # luma axis, homogeneous 0
        vv = np.outer(v, v)
        cm = np.tile(np.eye(4), (n, 1, 1))

        def apply(m: np.ndarray, on: np.ndarray) -> None:
            nonlocal cm
            cm = np.where(on[:, None, None], m, np.eye(4)) @ cm

        m = np.tile(np.eye(4), (n, 1, 1))
        m[:, :3, 3] = (next(z) * s.brightness_std)[:, None]
        apply(m, fires(s.brightness))
        m = np.tile(np.eye(4), (n, 1, 1))
        m[:, [0, 1, 2], [0, 1, 2]] = np.exp2(next(z) * s.contrast_std)[:, None]
        apply(m, fires(s.contrast))
        apply(np.eye(4) - 2 * vv * (next(u) < 0.5)[:, None, None], fires(s.lumaflip))
        apply(_rotation_about_luma((next(u) * 2 - 1) * math.pi * s.hue_max), fires(s.hue))
        m = vv + (np.eye(4) - vv) * np.exp2(next(z) * s.saturation_std)[:, None, None]
        m[:, 3, 3] = 1
        apply(m, fires(s.saturation))
        return _Draws(flip, k, shift, rows, cols, g, cm)

    # -- blit + geometric: one separable map per image where possible ---------------------------------

    def _spatial(self, x: torch.Tensor, d: "_Draws") -> torch.Tensor:
        """Blit, then geometric ops, applied in one pass.

        Flips, 180-degree turns and mirrored integer shifts permute rows and columns separately, and a warp without
        rotation (scale, anisotropic scale, fractional shift) resamples each axis separately, so for most images
        the whole stage is out = A x B^T with small per-image matrices (a pair of batched products whose backward
        is another such pair). Only rotated images go through the 2-D bilinear grid; their blit is folded into the
        upsampling matrices. Quarter turns of square images transpose the image first.
        """
        n, _, h, w = x.shape
        transpose = d.k % 2 == 1
        blitted = (d.rows != np.arange(h)).any(1) | (d.cols != np.arange(w)).any(1) | transpose
        warped = (d.g != np.eye(3)).any(axis=(1, 2))
        rotated = warped & ((d.g[:, 0, 1] != 0) | (d.g[:, 1, 0] != 0))
        separable = (blitted | warped) & ~rotated
        if not (separable | rotated).any():
            return x
        if transpose.any():
            sel = torch.as_tensor(transpose, device=x.device)[:, None, None, None]
            x = torch.where(sel, x.transpose(2, 3), x)
        out = x
        for subset, fn in ((separable, self._separable), (rotated, self._rotated)):
            if subset.any():
                idx = np.flatnonzero(subset)
                t_idx = torch.as_tensor(idx, device=x.device)
                res = fn(x.index_select(0, t_idx), d.rows[idx], d.cols[idx], d.g[idx], warped[idx])
                out = out.index_copy(0, t_idx, res)
        return out

    def _pads(self, g: np.ndarray, h: int, w: int) -> tuple[int, int, np.ndarray, np.ndarray]:
        """(px, py, xs, ys): mirror padding wide enough for every input position the warped 2x grid touches (plus
        the bilinear tap), rounded to a multiple of 4 so the matrix cache stays small; and that grid's sample
        positions in centred input pixels (extended so the valid down-filter returns H x W)."""
        ld = self._down_kernel.shape[0]
        mx, my = 2 * w + ld - 2, 2 * h + ld - 2
        xs = ((np.arange(mx) + 0.5) / 2 - mx / 4).astype(np.float32)
        ys = ((np.arange(my) + 0.5) / 2 - my / 4).astype(np.float32)
        cx, cy = float(xs[-1]), float(ys[-1])
        corners = np.array([[-cx, -cy, 1], [cx, -cy, 1], [-cx, cy, 1], [cx, cy, 1]])
        reach = np.abs(g @ corners.T)[:, :2].max(axis=(0, 2))  # [2]: max |x|, max |y|
        px = max(math.ceil(float(reach[0]) - w / 2) + 1, 0)
        py = max(math.ceil(float(reach[1]) - h / 2) + 1, 0)
        return -(-px // 4) * 4, -(-py // 4) * 4, xs, ys

    def _separable(self, x: torch.Tensor, rows: np.ndarray, cols: np.ndarray, g: np.ndarray,
                   warped: np.ndarray) -> torch.Tensor:
        """Blit and an axis-aligned warp as out = A x B^T (A [M, H, H], B [M, W, W]), in x's dtype."""
        m, _, h, w = x.shape
        dev = x.device
        a = torch.as_tensor(_one_hot(rows, h), device=dev)  # [M, H, H]: output row <- input row
        b = torch.as_tensor(_one_hot(cols, w), device=dev)
        if warped.any():
            px, py, xs, ys = self._pads(g, h, w)
            on = torch.as_tensor(warped, device=dev)[:, None, None]
            a = torch.where(on, self._axis_warp(g[:, 1, 1], g[:, 1, 2], ys, h, py, dev) @ a, a)
            b = torch.where(on, self._axis_warp(g[:, 0, 0], g[:, 0, 2], xs, w, px, dev) @ b, b)
        a, b = a.to(x.dtype), b.to(x.dtype)
        return a[:, None] @ (x @ b.transpose(1, 2)[:, None])

    def _axis_warp(self, scale: np.ndarray, offset: np.ndarray, grid: np.ndarray, size: int, pad: int,
                   dev: torch.device) -> torch.Tensor:
        """[M, size, size]: one axis of the alias-free warp x -> scale * x + offset (centred pixel units):
        mirror-pad and 2x upsample, sample the 2x grid bilinearly (grid_sample's arithmetic: align_corners=False,
        reflection at the padded edge), low-pass and decimate, composed into one matrix per image."""
        up = self._matrix("up", size, pad, None)  # [U, size], NumPy
        n_up = up.shape[0]
        # float32 as the 2-D path computes its grid, then grid_sample's unnormalisation
        src = scale.astype(np.float32)[:, None] * grid[None, :] + offset.astype(np.float32)[:, None]
        coord = src / np.float32((size + 2 * pad) / 2)
        pos = ((coord + 1) * n_up - 1) / 2
        pos = np.clip(_reflect_coordinate(pos, n_up), 0, n_up - 1)
        i0 = np.floor(pos)
        frac = (pos - i0).astype(np.float32)[..., None]
        i0 = i0.astype(np.int64)
        i1 = np.minimum(i0 + 1, n_up - 1)
        # Each 2x-grid sample blends two rows of the upsampling matrix: [M, len(grid), size] without the
        # [M, len(grid), U] interpolation matrix.
        sampled = up[i0] * (1 - frac) + up[i1] * np.where((i0 + 1 < n_up)[..., None], frac, 0)
        return self._matrix("down", size, 0, dev) @ torch.as_tensor(sampled, device=dev)

    def _rotated(self, x: torch.Tensor, rows: np.ndarray, cols: np.ndarray, g: np.ndarray,
                 warped: np.ndarray) -> torch.Tensor:
        h, w = x.shape[-2:]
        dev = x.device
        return self.resample(x, torch.as_tensor(g, dtype=torch.float32, device=dev),
                             torch.as_tensor(_one_hot(rows, h), device=dev),
                             torch.as_tensor(_one_hot(cols, w), device=dev))

    def _matrix(self, kind: str, size: int, pad: int, device: torch.device | None) -> torch.Tensor | np.ndarray:
        """A cached resampling matrix ("up" or "down") as a float32 tensor on `device`, or NumPy for None."""
        key = (kind, size, pad, str(device))
        if key not in self._matrices:
            if kind == "up":
                mat = up_matrix(size, pad, self._up_phases).astype(np.float32)
            else:
                mat = down_matrix(size, self._down_kernel).astype(np.float32)
            self._matrices[key] = mat if device is None else torch.tensor(mat, device=device)
        return self._matrices[key]

    def resample(self, x: torch.Tensor, g: torch.Tensor | np.ndarray, rows: torch.Tensor | None = None,
                 cols: torch.Tensor | None = None) -> torch.Tensor:
        """Warp [M, C, H, W] by the output->input matrices g [M, 3, 3] (centred pixel units), alias-free.

        mirror-pad + 2x windowed-sinc upsample (one matrix per axis) -> bilinear sampling of the warped
        grid at twice the output resolution -> windowed-sinc low-pass and decimation (one matrix per axis).
        Separable filters as small dense matrix products run far faster on CPU than depthwise convolutions.
        `rows` [M, H, H] and `cols` [M, W, W], when given, first map each image to rows @ x @ cols^T (a blit),
        folded into the upsampling products.
        """
        m, c, h, w = x.shape
        dev = x.device
        g = g.detach().cpu().double().numpy() if isinstance(g, torch.Tensor) else g
        px, py, xs, ys = self._pads(g, h, w)
        up_w = self._matrix("up", w, px, dev)
        up_h = self._matrix("up", h, py, dev)
        if rows is not None:
            up_h, up_w = (up_h @ rows)[:, None], (up_w @ cols)[:, None]  # [M, 1, U, H], [M, 1, U, W]
        up = up_h.to(x.dtype) @ (x @ up_w.to(x.dtype).transpose(-1, -2))  # [M, C, 2(H + 2py), 2(W + 2px)]
        gx, gy = np.meshgrid(xs, ys)  # [len(ys), len(xs)]
        pts = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])  # [3, P]
        src = (g @ pts)[:, :2]  # [M, 2, P] in centred input pixels
        norm = np.array([(w + 2 * px) / 2, (h + 2 * py) / 2])[None, :, None]
        grid = (src / norm).transpose(0, 2, 1).reshape(m, len(ys), len(xs), 2).astype(np.float32)
        warped = F.grid_sample(up, torch.as_tensor(grid, dtype=up.dtype, device=dev), mode="bilinear",
                               padding_mode="reflection", align_corners=False)
        down_w = self._matrix("down", w, 0, dev).to(x.dtype)
        down_h = self._matrix("down", h, 0, dev).to(x.dtype)
        return down_h @ (warped @ down_w.T)

    # -- colour -------------------------------------------------------------------------------------

    def _color(self, x: torch.Tensor, d: "_Draws") -> torch.Tensor:
        n, c, h, w = x.shape
        if (d.color == np.eye(4)).all():
            return x
        # One product for the whole batch: where no op fired the matrix is the identity and the offset 0, which
        # reproduces those images exactly (finite values), so no selection pass is needed.
        cm = torch.as_tensor(d.color, dtype=x.dtype, device=x.device)
        flat = x.reshape(n, c, h * w)
        return torch.baddbmm(cm[:, :3, 3:], cm[:, :3, :3], flat).reshape(n, c, h, w)

    # -- image-space filtering ----------------------------------------------------------------------

    # Band centres (log2 cycles/pixel) of [0, 1/16], [1/16, 1/8], [1/8, 1/4], [1/4, 1/2] and the share of
    # white-noise energy (1D) each band carries, used to keep the expected image energy unchanged.
    _BAND_CENTRES = (-5.0, -3.5, -2.5, -1.5)
    _BAND_ENERGY = (1 / 8, 1 / 8, 1 / 4, 1 / 2)

    def _filter(self, x: torch.Tensor) -> torch.Tensor:
        s, (n, _, h, w), dev = self.spec, x.shape, x.device
        fires = torch.zeros(n, dtype=torch.bool, device=dev)
        log_gain = torch.zeros(n, 4, device=dev)
        for band, mult in enumerate(s.imgfilter_bands):
            f = self._fires(n, s.imgfilter * mult, dev)
            log_gain[:, band] = torch.where(f, torch.randn(n, device=dev) * s.imgfilter_std, 0.0)
            fires = fires | f
        if not bool(fires.any()):
            return x
        idx = fires.nonzero().squeeze(1)
        gains = torch.exp2(log_gain[idx])
        energy = torch.tensor(self._BAND_ENERGY, device=dev)
        gains = gains / (gains.square() * energy).sum(1, keepdim=True).sqrt()
        sub = x.index_select(0, idx)
        # Mirror-extend to twice the size so the FFT sees a seamless periodic image (no wrap-around edges).
        ph, pw = h // 2, w // 2
        ext = F.pad(sub, (pw, pw, ph, ph), mode="reflect") if min(h, w) > 1 else sub
        hh, ww = ext.shape[-2:]
        fy = torch.fft.fftfreq(hh, device=dev)[:, None]
        fx = torch.fft.rfftfreq(ww, device=dev)[None, :]
        logr = torch.sqrt(fx.square() + fy.square()).clamp(1 / 64, 0.5).log2()  # [hh, ww//2+1]
        centres = torch.tensor(self._BAND_CENTRES, device=dev)
        # Piecewise-linear interpolation of log2 gain over log2 frequency (smooth: no ringing from hard edges).
        pos = torch.bucketize(logr, centres).clamp(1, 3)
        lo, hi = centres[pos - 1], centres[pos]
        t = ((logr - lo) / (hi - lo)).clamp(0, 1)
        lg = gains.log2()  # [M, 4]
        curve = torch.exp2(lg[:, pos - 1] * (1 - t) + lg[:, pos] * t)  # [M, hh, wr]
        spec = torch.fft.rfft2(ext.float()) * curve[:, None]
        out = torch.fft.irfft2(spec, s=(hh, ww))[..., ph : ph + h, pw : pw + w].to(x.dtype)
        return x.index_copy(0, idx, out)

    # -- noise and cutout ---------------------------------------------------------------------------

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        s, n, dev = self.spec, x.shape[0], x.device
        sigma = (torch.randn(n, device=dev) * s.noise_std).abs() * self._fires(n, s.noise, dev)
        return x + torch.randn_like(x) * sigma[:, None, None, None].to(x.dtype)

    def _cutout(self, x: torch.Tensor) -> torch.Tensor:
        s, (n, _, h, w), dev = self.spec, x.shape, x.device
        fires = self._fires(n, s.cutout, dev)
        centre = torch.rand(n, 2, device=dev)
        cx = (torch.arange(w, device=dev) + 0.5) / w
        cy = (torch.arange(h, device=dev) + 0.5) / h
        outside_x = (cx[None, :] - centre[:, 0:1]).abs() >= s.cutout_size / 2  # [N, W]
        outside_y = (cy[None, :] - centre[:, 1:2]).abs() >= s.cutout_size / 2  # [N, H]
        keep = outside_x[:, None, :] | outside_y[:, :, None] | ~fires[:, None, None]
        return x * keep[:, None].to(x.dtype)


# -- the p controller ------------------------------------------------------------------------------------


@dataclass
class AdaController:
    """Moves `pipe.p` toward the overfitting target from r_t = E[sign(D(real))] (ADA paper, section 3).

    Call `accumulate(real_logits)` after every D step and `update(batch_size)` after every iteration; every
    `interval` iterations p moves by sign(r_t - target) * batch * interval / (ada_kimg * 1000), clamped
    at 0, so p can cross [0, 1] in ada_kimg thousand images. With several processes, pass a `reduce`
    function that sums a tensor across them (e.g. all_reduce) so every rank moves p identically.
    """

    pipe: AugmentPipe
    target: float = 0.6
    ada_kimg: float = 500
    interval: int = 4
    reduce: object = None  # callable(tensor) -> summed tensor, for multi-process training
    _sum: float = 0.0
    _count: float = 0.0
    _steps: int = 0
    last_rt: torch.Tensor | float | None = field(default=None)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add a batch of discriminator outputs on (augmented) real images."""
        logits = real_logits.detach().float()
        self._sum = self._sum + logits.sign().sum()  # stays on the device: no host sync per step
        self._count += logits.numel()

    def update(self, batch_size: int) -> torch.Tensor | None:
        """Count an iteration of `batch_size` images; every `interval` of them adjust p. Returns r_t (a device
        tensor) or None."""
        self._steps += 1
        if self._steps % self.interval != 0:
            return None
        if self._count <= 0 and self.reduce is None:
            return None
        # All on the device (no host sync): r_t, then p += sign(r_t - target) * step, clamped at 0.
        p = self.pipe.p
        stats = torch.stack([torch.as_tensor(self._sum, dtype=torch.float32, device=p.device).reshape(()),
                             torch.tensor(float(self._count), device=p.device)])
        if self.reduce is not None:
            stats = self.reduce(stats)
        self._sum, self._count = 0.0, 0.0
        rt = stats[0] / stats[1].clamp(min=1)
        step = (batch_size * self.interval) / (self.ada_kimg * 1000)
        p.copy_((p + torch.sign(rt - self.target) * step).clamp(min=0))
        self.last_rt = rt
        return rt

    def state_dict(self) -> dict:
        """JSON-able state (p lives in the pipe; saved too for convenience)."""
        return {
            "p": float(self.pipe.p),
            "sum": float(self._sum),
            "count": self._count,
            "steps": self._steps,
            "last_rt": None if self.last_rt is None else float(self.last_rt),
            "target": self.target,
            "ada_kimg": self.ada_kimg,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned (p, partial statistics, step phase)."""
        self.pipe.p.fill_(float(state["p"]))
        self._sum = float(state.get("sum", 0.0))
        self._count = float(state.get("count", 0.0))
        self._steps = int(state.get("steps", 0))
        self.last_rt = state.get("last_rt")
