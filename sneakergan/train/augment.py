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


def _reflect_coordinate(pos: torch.Tensor, size: int) -> torch.Tensor:
    """grid_sample's reflection of unnormalised coordinates (align_corners=False): mirror about -0.5 and size - 0.5."""
    t = (pos + 0.5).abs()
    extra = torch.fmod(t, size)
    odd = torch.floor(t / size).remainder(2) == 1
    return torch.where(odd, size - extra, extra) - 0.5


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
        self._matrices: dict[tuple, torch.Tensor] = {}  # resampling matrices by (kind, size, pad, device)
        luma = torch.tensor([1.0, 1.0, 1.0]) / math.sqrt(3)
        self.register_buffer("_luma", luma, persistent=False)

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
        if s.xflip or s.rotate90 or s.xint or s.scale or s.rotate or s.aniso or s.xfrac:
            x = self._spatial(x)
        if x.shape[1] == 3 and (s.brightness or s.contrast or s.lumaflip or s.hue or s.saturation):
            x = self._color(x)
        if s.imgfilter:
            x = self._filter(x)
        if s.noise:
            x = self._noise(x)
        if s.cutout:
            x = self._cutout(x)
        return x

    # -- blit + geometric: one separable map per image where possible ---------------------------------

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        """Blit, then geometric ops, applied in one pass.

        Flips, 180-degree turns and mirrored integer shifts permute rows and columns separately, and a warp without
        rotation (scale, anisotropic scale, fractional shift) resamples each axis separately, so for most images
        the whole stage is out = A x B^T with small per-image matrices (a pair of batched products whose backward
        is another such pair). Only rotated images go through the 2-D bilinear grid; their blit is folded into the
        upsampling matrices. Quarter turns of square images transpose the image first.
        """
        s, (n, _, h, w), dev = self.spec, x.shape, x.device
        rows, cols, transpose = self._draw_blit(n, h, w, dev)
        g = self._draw_geom(n, h, w, dev)
        ident_r, ident_c = torch.arange(h, device=dev), torch.arange(w, device=dev)
        blitted = (rows != ident_r).any(1) | (cols != ident_c).any(1) | transpose
        warped = (g != torch.eye(3, device=dev)).any(dim=(1, 2))
        rotated = warped & ((g[:, 0, 1] != 0) | (g[:, 1, 0] != 0))
        separable = (blitted | warped) & ~rotated
        if not bool((separable | rotated).any()):
            return x
        if bool(transpose.any()):
            x = torch.where(transpose[:, None, None, None], x.transpose(2, 3), x)
        out = x
        for subset, fn in ((separable, self._separable), (rotated, self._rotated)):
            if bool(subset.any()):
                idx = subset.nonzero().squeeze(1)
                res = fn(x.index_select(0, idx), rows.index_select(0, idx), cols.index_select(0, idx),
                         g.index_select(0, idx), warped.index_select(0, idx))
                out = out.index_copy(0, idx, res)
        return out

    def _draw_blit(self, n: int, h: int, w: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows [N, H], cols [N, W], transpose [N]): out[i, j] = src[rows[i], cols[j]], src = x or x transposed.

        The ops in the paper's order: x-flip, then k quarter turns, then a mirrored integer shift (torch.rot90's
        conventions; only half turns for non-square images, whose shape a quarter turn would change)."""
        s = self.spec
        r0, c0 = torch.arange(h, device=dev).expand(n, h), torch.arange(w, device=dev).expand(n, w)
        flip = torch.zeros(n, dtype=torch.bool, device=dev)
        k = torch.zeros(n, dtype=torch.long, device=dev)
        if s.xflip:
            flip = (torch.randint(2, (n,), device=dev) * self._fires(n, s.xflip, dev)).bool()
        if s.rotate90:
            k = torch.randint(4, (n,), device=dev) * self._fires(n, s.rotate90, dev)
            if h != w:
                k = k - k % 2
        # After the flip, col j of the image reads fa(j); the turn then maps (i, j) as torch.rot90 does.
        def fa(j: torch.Tensor) -> torch.Tensor:
            return torch.where(flip[:, None], (w - 1) - j, j)
        # k = 0, 1, 2, 3; odd k (square images only) read the transposed image.
        rr = [r0, fa((w - 1) - r0) if h == w else r0, (h - 1) - r0, fa(r0) if h == w else r0]
        cc = [fa(c0), c0, fa((w - 1) - c0), (w - 1) - c0]
        rows = torch.stack(rr).gather(0, k[None, :, None].expand(1, n, h))[0]
        cols = torch.stack(cc).gather(0, k[None, :, None].expand(1, n, w))[0]
        transpose = (k % 2) == 1
        if s.xint:
            fires = self._fires(n, s.xint, dev)
            frac = (torch.rand(n, 2, device=dev) * 2 - 1) * s.xint_max
            shift = torch.round(frac * torch.tensor([w, h], device=dev)).long() * fires[:, None]
            # Output pixel j shows pixel j - dx of the turned image (content moves right by dx), mirrored at edges.
            rows = rows.gather(1, _reflect_index(r0 - shift[:, 1:2], h))
            cols = cols.gather(1, _reflect_index(c0 - shift[:, 0:1], w))
        return rows, cols, transpose

    def _draw_geom(self, n: int, h: int, w: int, dev: torch.device) -> torch.Tensor:
        """[N, 3, 3] output->input matrices in centred pixel units (identity where no geometric op fired).

        Every op's distribution is symmetric under inversion, so composing the inverse transforms is the same
        as composing the forward ones."""
        s = self.spec
        g = torch.eye(3, device=dev).repeat(n, 1, 1)

        def compose(m: torch.Tensor, fires: torch.Tensor) -> None:
            nonlocal g
            g = g @ torch.where(fires[:, None, None], m, torch.eye(3, device=dev).expand(n, 3, 3))

        def scale_mat(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
            m = torch.eye(3, device=dev).repeat(n, 1, 1)
            m[:, 0, 0], m[:, 1, 1] = sx, sy
            return m

        def rot_mat(theta: torch.Tensor) -> torch.Tensor:
            m = torch.eye(3, device=dev).repeat(n, 1, 1)
            m[:, 0, 0], m[:, 0, 1] = theta.cos(), -theta.sin()
            m[:, 1, 0], m[:, 1, 1] = theta.sin(), theta.cos()
            return m

        if s.scale:
            sc = torch.exp2(torch.randn(n, device=dev) * s.scale_std)
            compose(scale_mat(sc, sc), self._fires(n, s.scale, dev))
        # Rotation is applied twice (around the anisotropic scale) with p_rot chosen so that the
        # probability of any rotation is p, as in the paper.
        p_rot = 1 - torch.sqrt((1 - self.p * s.rotate).clamp(0, 1))
        if s.rotate:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * s.rotate_max
            compose(rot_mat(theta), self._fires(n, 1, dev, prob=p_rot))
        if s.aniso:
            an = torch.exp2(torch.randn(n, device=dev) * s.aniso_std)
            compose(scale_mat(an, 1 / an), self._fires(n, s.aniso, dev))
        if s.rotate:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * s.rotate_max
            compose(rot_mat(theta), self._fires(n, 1, dev, prob=p_rot))
        if s.xfrac:
            tr = torch.randn(n, 2, device=dev) * s.xfrac_std * torch.tensor([w, h], device=dev, dtype=torch.float32)
            m = torch.eye(3, device=dev).repeat(n, 1, 1)
            m[:, 0, 2], m[:, 1, 2] = tr[:, 0], tr[:, 1]
            compose(m, self._fires(n, s.xfrac, dev))
        return g

    def _pads(self, g: torch.Tensor, h: int, w: int) -> tuple[int, int, tuple[torch.Tensor, torch.Tensor]]:
        """(px, py, (xs, ys)): mirror padding wide enough for every input position the warped 2x grid touches (plus
        the bilinear tap), rounded to a multiple of 4 so the matrix cache stays small; and that grid's sample
        positions in centred input pixels (extended so the valid down-filter returns H x W)."""
        dev = g.device
        ld = self._down_kernel.shape[0]
        mx, my = 2 * w + ld - 2, 2 * h + ld - 2
        xs = (torch.arange(mx, device=dev, dtype=torch.float32) + 0.5) / 2 - mx / 4
        ys = (torch.arange(my, device=dev, dtype=torch.float32) + 0.5) / 2 - my / 4
        cx, cy = float(xs[-1]), float(ys[-1])
        corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [-cx, cy, 1], [cx, cy, 1]], device=dev)
        reach = (g @ corners.T)[:, :2].abs().amax(dim=(0, 2))  # [2]: max |x|, max |y|
        px = max(math.ceil(float(reach[0]) - w / 2) + 1, 0)
        py = max(math.ceil(float(reach[1]) - h / 2) + 1, 0)
        return -(-px // 4) * 4, -(-py // 4) * 4, (xs, ys)

    def _separable(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, g: torch.Tensor,
                   warped: torch.Tensor) -> torch.Tensor:
        """Blit and an axis-aligned warp as out = A x B^T (A [M, H, H], B [M, W, W]), in x's dtype."""
        m, _, h, w = x.shape
        a = F.one_hot(rows, h).float()  # [M, H, H]: output row <- input row
        b = F.one_hot(cols, w).float()
        if bool(warped.any()):
            px, py, (xs, ys) = self._pads(g, h, w)
            a = torch.where(warped[:, None, None], self._axis_warp(g[:, 1, 1], g[:, 1, 2], ys, h, py) @ a, a)
            b = torch.where(warped[:, None, None], self._axis_warp(g[:, 0, 0], g[:, 0, 2], xs, w, px) @ b, b)
        a, b = a.to(x.dtype), b.to(x.dtype)
        return a[:, None] @ (x @ b.transpose(1, 2)[:, None])

    def _axis_warp(self, scale: torch.Tensor, offset: torch.Tensor, grid: torch.Tensor, size: int,
                   pad: int) -> torch.Tensor:
        """[M, size, size]: one axis of the alias-free warp x -> scale * x + offset (centred pixel units):
        mirror-pad and 2x upsample, sample the 2x grid bilinearly (grid_sample's arithmetic: align_corners=False,
        reflection at the padded edge), low-pass and decimate, composed into one matrix per image."""
        dev = scale.device
        up = self._matrix("up", size, pad, dev)  # [U, size]
        down = self._matrix("down", size, 0, dev)  # [size, len(grid)]
        n_up = up.shape[0]
        src = scale[:, None] * grid[None, :] + offset[:, None]  # [M, G] centred input pixels
        coord = src / ((size + 2 * pad) / 2)  # grid_sample's normalised coordinates, as the 2-D path makes them
        pos = ((coord + 1) * n_up - 1) / 2
        pos = _reflect_coordinate(pos, n_up).clamp(0, n_up - 1)
        i0 = pos.floor()
        frac = pos - i0
        i0 = i0.long()
        i1 = (i0 + 1).clamp(max=n_up - 1)
        wts = torch.zeros(*src.shape, n_up, device=dev)  # [M, G, U]
        wts.scatter_add_(2, i0[..., None], (1 - frac)[..., None])
        wts.scatter_add_(2, i1[..., None], torch.where(i0 + 1 < n_up, frac, 0.0)[..., None])
        return down @ wts @ up

    def _rotated(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, g: torch.Tensor,
                 warped: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.resample(x, g, F.one_hot(rows, h).float(), F.one_hot(cols, w).float())

    def _matrix(self, kind: str, size: int, pad: int, device: torch.device) -> torch.Tensor:
        key = (kind, size, pad, str(device))
        if key not in self._matrices:
            if kind == "up":
                mat = up_matrix(size, pad, self._up_phases)
            else:
                mat = down_matrix(size, self._down_kernel)
            self._matrices[key] = torch.tensor(mat, dtype=torch.float32, device=device)
        return self._matrices[key]

    def resample(self, x: torch.Tensor, g: torch.Tensor, rows: torch.Tensor | None = None,
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
        px, py, (xs, ys) = self._pads(g, h, w)
        up_w = self._matrix("up", w, px, dev)
        up_h = self._matrix("up", h, py, dev)
        if rows is not None:
            up_h, up_w = (up_h @ rows)[:, None], (up_w @ cols)[:, None]  # [M, 1, U, H], [M, 1, U, W]
        up = up_h.to(x.dtype) @ (x @ up_w.to(x.dtype).transpose(-1, -2))  # [M, C, 2(H + 2py), 2(W + 2px)]
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pts = torch.stack([gx, gy, torch.ones_like(gx)]).reshape(3, -1)  # [3, P]
        src = (g @ pts)[:, :2]  # [M, 2, P] in centred input pixels
        norm = torch.tensor([(w + 2 * px) / 2, (h + 2 * py) / 2], device=dev)[None, :, None]
        grid = (src / norm).transpose(1, 2).reshape(m, len(ys), len(xs), 2)
        warped = F.grid_sample(up, grid.to(up.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)
        down_w = self._matrix("down", w, 0, dev).to(x.dtype)
        down_h = self._matrix("down", h, 0, dev).to(x.dtype)
        return down_h @ (warped @ down_w.T)

    # -- colour -------------------------------------------------------------------------------------

    def _color(self, x: torch.Tensor) -> torch.Tensor:
        s, (n, c, h, w), dev = self.spec, x.shape, x.device
        cm = torch.eye(4, device=dev).repeat(n, 1, 1)
        changed = torch.zeros(n, dtype=torch.bool, device=dev)
        v = torch.cat([self._luma, self._luma.new_zeros(1)])  # luma axis, homogeneous 0
        vv = torch.outer(v, v)
        eye = torch.eye(4, device=dev)

        def apply(m: torch.Tensor, fires: torch.Tensor) -> None:
            nonlocal cm, changed
            cm = torch.where(fires[:, None, None], m, eye) @ cm
            changed = changed | fires

        if s.brightness:
            b = torch.randn(n, device=dev) * s.brightness_std
            m = eye.repeat(n, 1, 1)
            m[:, :3, 3] = b[:, None]
            apply(m, self._fires(n, s.brightness, dev))
        if s.contrast:
            k = torch.exp2(torch.randn(n, device=dev) * s.contrast_std)
            m = eye.repeat(n, 1, 1)
            m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = k
            apply(m, self._fires(n, s.contrast, dev))
        if s.lumaflip:
            flip = torch.randint(2, (n,), device=dev).float()
            apply(eye - 2 * vv * flip[:, None, None], self._fires(n, s.lumaflip, dev))
        if s.hue:
            theta = (torch.rand(n, device=dev) * 2 - 1) * math.pi * s.hue_max
            apply(self._rotation_about_luma(theta), self._fires(n, s.hue, dev))
        if s.saturation:
            sat = torch.exp2(torch.randn(n, device=dev) * s.saturation_std)
            m = vv + (eye - vv) * sat[:, None, None]
            m[:, 3, 3] = 1
            apply(m, self._fires(n, s.saturation, dev))
        if not bool(changed.any()):
            return x
        # One product for the whole batch: where no op fired the matrix is the identity and the offset 0, which
        # reproduces those images exactly (finite values), so no selection pass is needed.
        flat = x.reshape(n, c, h * w)
        return torch.baddbmm(cm[:, :3, 3:].to(x.dtype), cm[:, :3, :3].to(x.dtype), flat).reshape(n, c, h, w)

    def _rotation_about_luma(self, theta: torch.Tensor) -> torch.Tensor:
        """Rodrigues rotation of RGB about the grey axis by theta (4x4, homogeneous)."""
        n = theta.shape[0]
        v = self._luma
        k = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], device=theta.device)
        eye3 = torch.eye(3, device=theta.device)
        r = eye3 + theta.sin()[:, None, None] * k + (1 - theta.cos())[:, None, None] * (k @ k)
        m = torch.eye(4, device=theta.device).repeat(n, 1, 1)
        m[:, :3, :3] = r
        return m

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
