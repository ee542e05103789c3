"""Sneaker-likeness statistics: simple image measurements that separate product-shot sneakers from blobs.

Used where no Inception weights are available (this machine has none): the demo model's samples are compared
with the synthetic set on the same numbers. A side-view product shot has a mostly white background, a darker sole
band in the bottom part of the shoe, and one connected object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

WHITE_THRESHOLD = 235  # a pixel is background when all channels are at least this bright


@dataclass(frozen=True)
class SneakerStats:
    """Per-image measurements (fractions in [0, 1])."""

    background_white: float  # share of the border frame that is near-white
    foreground: float  # share of the image covered by the object
    components: int  # connected foreground objects bigger than 1% of the foreground
    largest_share: float  # share of the foreground in the largest object
    sole_contrast: float  # median row luminance minus the darkest row in the bottom third (>0: darker sole)

    @property
    def sneaker_like(self) -> bool:
        """All the checks a product-shot sneaker passes."""
        return (self.background_white > 0.9 and 0.08 < self.foreground < 0.8 and self.largest_share > 0.9
                and self.sole_contrast > 0.0)


def measure(img: np.ndarray) -> SneakerStats:
    """Measure one uint8 HxWx3 image."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"expected an HxWx3 image, got shape {img.shape}")
    rgb = img[..., :3].astype(np.float32)
    h, w = rgb.shape[:2]
    fg = (rgb < WHITE_THRESHOLD).any(axis=2)
    b = max(1, min(h, w) // 16)
    border = np.concatenate([fg[:b].ravel(), fg[-b:].ravel(), fg[:, :b].ravel(), fg[:, -b:].ravel()])
    background_white = 1.0 - float(border.mean())
    # close small gaps (laces, outlines) before counting objects
    solid = ndimage.binary_closing(fg, structure=np.ones((3, 3)), iterations=1)
    labels, n = ndimage.label(solid)
    sizes = np.bincount(labels.ravel())[1:] if n else np.array([0])
    total = max(int(sizes.sum()), 1)
    components = int((sizes > 0.01 * total).sum())
    largest_share = float(sizes.max() / total) if n else 0.0
    sole_contrast = 0.0
    if n:
        obj = labels == (int(np.argmax(sizes)) + 1)
        luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        rows = [r for r in range(h) if obj[r].any()]
        row_luma = np.array([luma[r][obj[r]].mean() for r in rows])
        # the sole: the darkest row of the bottom third of the object, against the object's median row
        bottom_third = row_luma[int(len(rows) * 2 / 3):]
        sole_contrast = float((np.median(row_luma) - bottom_third.min()) / 255.0)
    return SneakerStats(background_white, float(fg.mean()), components, largest_share, sole_contrast)


def summarize(images: list[np.ndarray] | np.ndarray) -> dict[str, float]:
    """Means of every statistic and the share of images passing all checks."""
    stats = [measure(im) for im in images]
    if not stats:
        raise ValueError("no images to measure")
    out = {k: float(np.mean([asdict(s)[k] for s in stats])) for k in asdict(stats[0])}
    out["single_object"] = float(np.mean([s.components == 1 for s in stats]))
    out["sneaker_like"] = float(np.mean([s.sneaker_like for s in stats]))
    out["count"] = len(stats)
    return out
