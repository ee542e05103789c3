"""Encoding rendered arrays for the web: one place decides formats and settings, so every path gives equal bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

FORMATS = {"png": "image/png", "webp": "image/webp"}
MAX_LONG_SIDE = 2048  # upscaled downloads: large enough to print, small enough to render in a request


def encode_image(arr: np.ndarray, fmt: str) -> bytes:
    """uint8 HxWx3 -> PNG or WebP bytes (deterministic for equal input)."""
    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(arr[..., :3]))
    if fmt == "png":
        img.save(buf, format="PNG", compress_level=6)
    elif fmt == "webp":
        img.save(buf, format="WEBP", quality=90, method=4)
    else:
        raise ValueError(f"unknown image format {fmt!r} (png or webp)")
    return buf.getvalue()


def upscale(arr: np.ndarray, long_side: int) -> np.ndarray:
    """uint8 HxWx3 resized so its longer side is `long_side`, with Lanczos (sharp edges, no blocky pixels).

    The model draws at its native size; this is an enlargement, not more detail, and the site labels it so.
    """
    if not 1 <= long_side <= MAX_LONG_SIDE:
        raise ValueError(f"size must be in [1, {MAX_LONG_SIDE}]")
    h, w = arr.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return arr
    return np.asarray(Image.fromarray(np.ascontiguousarray(arr[..., :3])).resize(size, Image.Resampling.LANCZOS))
