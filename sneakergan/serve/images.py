"""Encoding rendered arrays for the web: one place decides formats and settings, so every path gives equal bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

FORMATS = {"png": "image/png", "webp": "image/webp"}


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
