"""Image bytes of every kind the collector must survive, made on the fly (no binary fixtures in git)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _pattern(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(1, 1, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    arr = (base + xx[..., None] * (seed % 7 + 1) + yy[..., None] * 3) % 256
    return arr.astype(np.uint8)


def jpeg(w: int = 96, h: int = 80, seed: int = 0, mode: str = "RGB") -> bytes:
    """A JPEG whose content depends on `seed` (different seeds give different bytes)."""
    img = Image.fromarray(_pattern(w, h, seed))
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png(w: int = 96, h: int = 80, seed: int = 0, mode: str = "RGB") -> bytes:
    """A PNG in `mode` (RGB, RGBA, P, L, I;16 for 16-bit greyscale)."""
    img = Image.fromarray(_pattern(w, h, seed))
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)
    elif mode == "P":
        img = img.quantize(16)
    elif mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def animated_gif(w: int = 96, h: int = 96) -> bytes:
    """A two-frame GIF."""
    frames = [Image.fromarray(_pattern(w, h, s)).convert("P") for s in (1, 2)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def bomb_png(side: int = 10_000) -> bytes:
    """A small file that decodes to side*side pixels (a decompression bomb for a low pixel limit)."""
    img = Image.new("1", (side, side))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def truncated(data: bytes) -> bytes:
    """The first half of an image file."""
    return data[: len(data) // 2]
