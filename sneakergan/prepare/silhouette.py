"""Balance silhouettes: group images by shape alone, cap each group, keep the most distinct colourways.

A few models (Vans Old Skool, Jordan 1) are sold in hundreds of colourways and would dominate a scraped
set. Shape is the perceptual hash of the normalised binary foreground mask, so colour plays no part;
colourways within a group are told apart by a coarse colour histogram of the shoe's pixels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from PIL import Image

from sneakergan.prepare.dedupe import cluster, phash_int

COLOUR_BINS = 4  # per channel: 64-bin RGB histogram, coarse enough to ignore shading


def shape_hash(mask: np.ndarray) -> int:
    """64-bit pHash of a boolean mask (the shoe's outline in the normalised frame)."""
    return phash_int(Image.fromarray(mask.astype(np.uint8) * 255, "L"))


def colour_descriptor(img: Image.Image, mask: np.ndarray) -> np.ndarray:
    """L1-normalised coarse RGB histogram of the shoe's pixels (all pixels if the mask is empty)."""
    arr = np.asarray(img.convert("RGB"))
    px = arr[mask] if mask.any() else arr.reshape(-1, 3)
    q = (px.astype(np.int32) * COLOUR_BINS) // 256
    idx = (q[:, 0] * COLOUR_BINS + q[:, 1]) * COLOUR_BINS + q[:, 2]
    hist = np.bincount(idx, minlength=COLOUR_BINS ** 3).astype(np.float32)
    return hist / max(float(hist.sum()), 1.0)


def group_silhouettes(hashes: Sequence[int], threshold: int = 10) -> list[int]:
    """Group id per image (a leader's position): shapes within `threshold` bits of a leader share it."""
    return cluster(hashes, threshold)


def farthest_point(descriptors: np.ndarray, k: int, first: int = 0) -> list[int]:
    """Greedy farthest-point selection of `k` rows (L1 distance), starting at row `first`.

    Each pick is the row farthest from everything picked so far: the most distinct colourways first.
    """
    n = len(descriptors)
    if k >= n:
        return list(range(n))
    picked = [first]
    dist = np.abs(descriptors - descriptors[first]).sum(axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, np.abs(descriptors - descriptors[nxt]).sum(axis=1))
    return picked


def cap_groups(groups: Sequence[int], descriptors: np.ndarray, cap: int,
               priority: Sequence[float] | None = None) -> list[bool]:
    """Which images survive a cap of `cap` per group (True = kept).

    Within an over-full group the first pick is the highest-`priority` image (e.g. sharpest), then the
    most distinct colourways by farthest-point selection.
    """
    keep = [True] * len(groups)
    if cap <= 0:
        return keep
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    for idx in members.values():
        if len(idx) <= cap:
            continue
        first = int(np.argmax([priority[i] for i in idx])) if priority is not None else 0
        chosen = set(farthest_point(descriptors[idx], cap, first))
        for j, i in enumerate(idx):
            keep[i] = j in chosen
    return keep
