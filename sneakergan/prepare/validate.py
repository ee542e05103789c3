"""Decode one stored image safely and turn it into 8-bit RGB on white.

Every failure becomes a `Decoded` with a status code and a human reason; nothing here raises on bad
input, so one hostile file never stops a run over 100k images.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..collect.store import ImageRejected, open_untrusted

DEFAULT_MAX_PIXELS = 40_000_000


@dataclass
class Decoded:
    """The result of decoding: `image` (RGB) when status is 'ok', else a rejection code and reason."""

    status: str
    reason: str | None = None
    image: Image.Image | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    scale: float = 1.0  # original width / decoded width (JPEG draft decoding may shrink by 2, 4 or 8)
    quality: float = 100.0  # estimated encoding quality: JPEG from its tables, lossless formats 100


# libjpeg's standard luminance table (ITU-T T.81 Annex K): what quality 50 scales.
_STD_LUMA_MEAN = float(np.mean([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]))
_LOSSLESS = {"PNG", "TIFF", "BMP", "PPM", "TGA"}


def encoding_quality(img: Image.Image) -> float:
    """Estimated quality (0-100) of how `img` was encoded: a re-saved, more compressed copy scores lower.

    JPEG: inverts libjpeg's quality scaling from the mean of the luminance quantisation table. Lossless
    formats: 100. Others (WebP, GIF, ...): 90, unknown but usually lossy.
    """
    if img.format == "JPEG":
        tables = getattr(img, "quantization", None) or {}
        if 0 in tables:
            scale = 100.0 * float(np.mean(tables[0])) / _STD_LUMA_MEAN
            q = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
            return float(np.clip(q, 1.0, 100.0))
        return 75.0
    return 100.0 if img.format in _LOSSLESS else 90.0


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert any Pillow mode we meet in the wild to 8-bit RGB.

    Transparency is composited on `background` (white: product shots are cut out on white), 16/32-bit
    greyscale is scaled to 8 bits rather than clipped (Pillow's plain convert saturates at 255).
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if mode == "I" and arr.max() <= 65535 and arr.min() >= 0 and arr.max() > 255:
            top = 65535.0  # 16-bit PNGs open as "I" in some Pillow versions
        elif mode in ("I", "F") and arr.max() <= 255 and arr.min() >= 0:
            top = 255.0
        arr8 = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    # CMYK, YCbCr, L, 1, P, RGBX: Pillow's converters are right for these.
    return img.convert("RGB")


def decode(source: bytes | str | Path, min_side: int = 64, max_pixels: int = DEFAULT_MAX_PIXELS,
           draft: int | None = None) -> Decoded:
    """Decode image bytes (or a file path) to RGB. Never raises on bad input.

    `draft`: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long as its longer side stays at least
    `draft` pixels (libjpeg skips the work; several times faster for big photos headed for 256 px).

    Codes: not_image, decode_error, too_many_pixels (checked from the header, before decoding, so a
    decompression bomb costs nothing), too_small (shorter side under `min_side`), unsupported_mode.
    The EXIF orientation is applied, so phone photos come out upright.
    """
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as e:
        return Decoded("missing", f"could not read the stored file: {e.strerror or e}")
    if not data:
        return Decoded("not_image", "empty file")
    try:
        img = open_untrusted(data)  # our own pixel limit below is the policy
    except ImageRejected as r:
        return Decoded(r.code, r.reason)
    w, h = img.size
    meta = {"width": w, "height": h, "mode": img.mode}
    quality = encoding_quality(img)
    if w * h > max_pixels:
        return Decoded("too_many_pixels", f"{w}x{h} = {w * h} pixels is over the limit of {max_pixels}", **meta)
    if min(w, h) < min_side:
        return Decoded("too_small", f"{w}x{h}: shorter side is under {min_side} pixels", **meta)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if draft and img.format == "JPEG" and max(w, h) > draft:
                k = draft / max(w, h)
                img.draft(img.mode, (max(1, int(w * k + 0.999)), max(1, int(h * k + 0.999))))
            img.load()  # first frame only for animations
            img = ImageOps.exif_transpose(img) or img
            rgb = to_rgb(img)
            rgb.load()
    except Image.DecompressionBombError as e:
        return Decoded("too_many_pixels", f"decompression bomb: {e}", **meta)
    except (ValueError, KeyError) as e:
        if "mode" in str(e).lower() or "conversion" in str(e).lower():
            return Decoded("unsupported_mode", f"pixel mode {img.mode} cannot be turned into RGB", **meta)
        return Decoded("decode_error", f"could not decode: {type(e).__name__}: {e}", **meta)
    except Exception as e:  # truncated or corrupt data: OSError, SyntaxError, ...
        return Decoded("decode_error", f"could not decode: {type(e).__name__}: {e}", **meta)
    notes = {"CMYK": "converted from CMYK", "L": "greyscale", "LA": "greyscale with alpha, flattened on white",
             "RGBA": "alpha flattened on white", "P": "palette converted", "PA": "palette with alpha, flattened",
             "1": "1-bit black-and-white", "I;16": "16-bit greyscale scaled to 8 bits",
             "I;16B": "16-bit greyscale scaled to 8 bits", "I": "integer greyscale scaled to 8 bits"}
    return Decoded("ok", notes.get(meta["mode"]), rgb, **meta, scale=max(w, h) / max(rgb.size),
                   quality=quality)
