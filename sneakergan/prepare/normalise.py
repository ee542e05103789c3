"""Normalise a product shot: find the shoe, crop with a margin, centre it on white, point the toe left.

Webshop photos put the shoe on a uniform (usually near-white) background, so the background colour is
estimated from the image border and the foreground is whatever differs from it. When the border is not
uniform (a lifestyle photo) the whole image is used: a graceful fallback, flagged in the result so the
plausibility check and the report can tell.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage


@dataclass(frozen=True)
class NormaliseConfig:
    """Knobs of `normalise`; the defaults suit webshop product shots."""

    resolution: int = 256
    margin: float = 0.06            # margin around the shoe, as a fraction of its longer side
    border: float = 0.03            # width of the border strip used to estimate the background
    bg_tolerance: float = 28.0      # border pixels within this of the median colour count as background
    bg_uniformity: float = 0.85     # border pixels that must match the background for it to count as uniform
    min_threshold: float = 8.0      # foreground threshold floor (max abs RGB difference from the background);
                                    # low, because white midsoles on white backgrounds differ by ~15
    extent_threshold: float = 24.0  # the shoe's extent (box, shape) uses this stricter one: JPEG ringing
                                    # around the outline must not grow the box (it would shift the framing)
    work_size: int = 384            # masks are computed at this longer side (speed; the crop uses full res)
    min_component: float = 0.15     # groups smaller than this fraction of the largest are noise
    big_component: float = 0.35     # a second group at least this big (vs the largest) is another object
    grow: float = 0.015             # parts closer than ~2x this (fraction of the longer side) are one object
    flip_to_left: bool = True       # flip so the toe points left
    flip_margin: float = 0.08       # heel side must have this much more mass than toe side to decide


@dataclass
class Normalised:
    """The normalised square image plus what was learnt on the way (all plain numbers, JSON-friendly)."""

    image: Image.Image                      # RGB, resolution x resolution
    mask: np.ndarray                        # bool, resolution x resolution: the shoe in the output frame
    fallback: bool                          # background not uniform: whole image used
    flipped: bool
    background: tuple[int, int, int]
    bbox: tuple[int, int, int, int]         # crop box in the original image (left, top, right, bottom)
    foreground: float                       # shoe pixels / image pixels (original frame)
    aspect: float                           # bbox width / height
    objects: int                            # components that are big enough to be another object
    facing: str                             # "left", "right" or "unknown" (before any flip)
    stats: dict[str, float] = field(default_factory=dict)


def estimate_background(arr: np.ndarray, border: float, tolerance: float) -> tuple[np.ndarray, float, float]:
    """Median colour of the border strip, the fraction of border pixels within `tolerance` of it, and the
    background's noise level (99th percentile of those pixels' difference: JPEG ringing, sensor noise)."""
    h, w = arr.shape[:2]
    b = max(1, int(round(min(h, w) * border)))
    strip = np.concatenate([arr[:b].reshape(-1, 3), arr[-b:].reshape(-1, 3),
                            arr[:, :b].reshape(-1, 3), arr[:, -b:].reshape(-1, 3)]).astype(np.int16)
    colour = np.median(strip, axis=0)
    diff = np.abs(strip - colour).max(axis=1)
    close = diff <= tolerance
    noise = float(np.percentile(diff[close], 99)) if close.any() else tolerance
    return colour.astype(np.float32), float(close.mean()), noise


def foreground_mask(arr: np.ndarray, background: np.ndarray, threshold: float, speckle: int) -> np.ndarray:
    """Pixels that differ from the background colour by more than `threshold`, minus specks under
    `speckle` pixels (JPEG ringing, dust). Thin outlines survive: no morphological opening here."""
    diff = np.abs(arr.astype(np.int16) - background.astype(np.int16)).max(axis=2)
    mask = diff > threshold
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return np.isin(labels, np.flatnonzero(sizes >= speckle) + 1)


def main_object(mask: np.ndarray, grow: int, min_frac: float, big_frac: float) -> tuple[np.ndarray, int]:
    """The solid shape of the main object and the number of big objects.

    Parts closer than about 2*`grow` pixels belong together (a sole and an upper separated by a white
    midsole that matches the background); groups holding at least `min_frac` of the largest group's
    pixels are kept, and those holding `big_frac` of it count as separate objects (a pair of shoes, a box).
    The result is closed and hole-filled, so white panels inside the shoe are part of it.
    """
    grown = ndimage.binary_dilation(mask, iterations=grow)
    labels, n = ndimage.label(grown)
    if n == 0:
        return mask, 0
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    largest = sizes.max()
    keep = np.flatnonzero(sizes >= min_frac * largest) + 1
    big = int((sizes >= big_frac * largest).sum())
    solid = ndimage.binary_fill_holes(np.isin(labels, keep))
    # Erode back what the dilation added (border_value=1: shapes cut by the frame are not eaten away).
    solid = ndimage.binary_erosion(solid, iterations=grow, border_value=1)
    return solid | (mask & np.isin(labels, keep)), big


def facing(mask: np.ndarray, margin: float) -> str:
    """Which way the toe points, from the side view's shape: "left", "right" or "unknown".

    A sneaker is taller at the heel (collar, heel counter) than at the toe (the toe box slopes down to the
    sole), so the third of the shoe with more foreground mass is the heel end.
    """
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size < 3:
        return "unknown"
    x0, x1 = cols[0], cols[-1] + 1
    third = max(1, (x1 - x0) // 3)
    left = float(mask[:, x0:x0 + third].sum())
    right = float(mask[:, x1 - third:x1].sum())
    if max(left, right) == 0:
        return "unknown"
    if right > left * (1 + margin):
        return "left"   # heel on the right: toe points left
    if left > right * (1 + margin):
        return "right"
    return "unknown"


def normalise(img: Image.Image, cfg: NormaliseConfig = NormaliseConfig()) -> Normalised:
    """Crop `img` (RGB) to the shoe, centre it on a white square and resize to `cfg.resolution` (LANCZOS)."""
    W, H = img.size
    scale = min(1.0, cfg.work_size / max(W, H))
    small = img if scale == 1.0 else img.resize((max(1, round(W * scale)), max(1, round(H * scale))),
                                                Image.Resampling.BILINEAR)
    arr = np.asarray(small)
    bg, uniform, noise = estimate_background(arr, cfg.border, cfg.bg_tolerance)
    threshold = float(np.clip(noise + 6.0, cfg.min_threshold, cfg.bg_tolerance))
    fallback = uniform < cfg.bg_uniformity
    objects = 1
    mask = np.ones(arr.shape[:2], bool)
    paint = mask  # what gets composited onto white: the shoe plus its faint fringes
    if not fallback:
        speckle = max(4, arr.shape[0] * arr.shape[1] // 20000)
        strict = max(cfg.extent_threshold, noise + 12.0)
        m = foreground_mask(arr, bg, strict, speckle)
        if m.any():
            grow = max(1, round(cfg.grow * max(arr.shape[:2])))
            mask, objects = main_object(m, grow, cfg.min_component, cfg.big_component)
            faint = foreground_mask(arr, bg, threshold, speckle)
            paint = mask | (faint & ndimage.binary_dilation(mask, iterations=2))
        else:
            fallback = True
    foreground = float(mask.mean()) if not fallback else 1.0
    ys, xs = np.nonzero(mask)
    sx, sy = W / arr.shape[1], H / arr.shape[0]
    left, top = int(np.floor(xs.min() * sx)), int(np.floor(ys.min() * sy))
    right, bottom = int(np.ceil((xs.max() + 1) * sx)), int(np.ceil((ys.max() + 1) * sy))
    right, bottom = min(right, W), min(bottom, H)
    bw, bh = right - left, bottom - top
    face = "unknown" if fallback else facing(mask, cfg.flip_margin)

    side = int(np.ceil(max(bw, bh) * (1 + 2 * cfg.margin)))
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    ox, oy = (side - bw) // 2, (side - bh) // 2
    canvas.paste(img.crop((left, top, right, bottom)), (ox, oy))
    res = cfg.resolution
    # reducing_gap: a box pre-reduction then LANCZOS; same look, several times faster on big photos.
    out = canvas.resize((res, res), Image.Resampling.LANCZOS, reducing_gap=3.0)
    # The mask goes straight from the work frame to the output frame (never at full resolution).
    r = res / side
    mx0, my0 = int(round(ox * r)), int(round(oy * r))
    mw, mh = max(1, int(round(bw * r))), max(1, int(round(bh * r)))
    alpha = Image.new("L", (res, res), 0)   # what is painted
    shape = Image.new("L", (res, res), 0)   # the shoe's solid shape (silhouette, colours)
    if fallback:
        alpha.paste(255, (mx0, my0, mx0 + mw, my0 + mh))
        shape = alpha
    else:
        wx0, wy0 = int(xs.min()), int(ys.min())
        box = (slice(wy0, int(ys.max()) + 1), slice(wx0, int(xs.max()) + 1))
        alpha.paste(_to_frame(paint[box], mw, mh), (mx0, my0))
        shape.paste(_to_frame(mask[box], mw, mh), (mx0, my0))
        # Composite the shoe onto pure white through the soft mask (grown a pixel so outlines are not
        # eaten), so off-white and grey backgrounds become white; fallback photos are left as they are.
        soft = alpha.filter(ImageFilter.MaxFilter(3))
        out = Image.composite(out, Image.new("RGB", (res, res), (255, 255, 255)), soft)
    flipped = cfg.flip_to_left and face == "right"
    if flipped:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        shape = shape.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out_mask = np.asarray(shape) >= 128
    return Normalised(
        image=out, mask=out_mask, fallback=fallback, flipped=flipped,
        background=tuple(int(round(c)) for c in bg),  # type: ignore[arg-type]
        bbox=(left, top, right, bottom), foreground=foreground, aspect=bw / max(bh, 1),
        objects=objects, facing=face, stats={"bg_uniformity": uniform, "threshold": threshold, "noise": noise},
    )


def _to_frame(mask: np.ndarray, w: int, h: int) -> Image.Image:
    """A boolean work-frame mask as an 8-bit image resized (bilinear: soft edges) to w x h."""
    return Image.fromarray(mask.astype(np.uint8) * 255, "L").resize((w, h), Image.Resampling.BILINEAR)


def sharpness(img: Image.Image) -> float:
    """Variance of the Laplacian of the grey image: higher is sharper (a blurred or upscaled copy loses)."""
    g = np.asarray(img.convert("L"), dtype=np.float32)
    return float(ndimage.laplace(g).var())
