"""Photo uploads: read a multipart body within a byte limit (in memory, nothing spooled to disk), then decode only
what is plainly a usable PNG, JPEG or WebP photo.

Order matters for a server under hostile load: the caller holds a job slot before calling anything here, the
body is counted while it streams (a 1 GiB upload is cut at the limit, not stored first), the format is decided by
the file's first bytes against an allow-list (Pillow is never offered EPS, TIFF, BMP, ICO, GIF... whose loaders
are other attack surface), and the pixel count is checked from the header before a single pixel is decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import AsyncIterator

from PIL import Image, UnidentifiedImageError

try:  # python-multipart renamed its module; both spellings carry the same streaming parser
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError:  # pragma: no cover - older python-multipart
    from multipart.multipart import MultipartParser, parse_options_header  # type: ignore[no-redef]

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
WORKING_SIDE = 1024  # photos are reduced to this long side at decode time: the projector needs far less


class UploadRefused(ValueError):
    """An upload the site will not use; `status` is the HTTP status and the message is for the visitor."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadLimits:
    """What a photo upload may be."""

    max_bytes: int = 10 << 20         # the file itself
    max_pixels: int = 25_000_000      # width x height from the header (a 50 MP phone photo is refused, 24 MP is not)
    min_side: int = 32                # smaller photos carry too little to project


def sniff_format(head: bytes) -> str | None:
    """'PNG' | 'JPEG' | 'WEBP' from a file's first bytes, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


async def read_multipart_file(content_type: str | None, chunks: AsyncIterator[bytes], max_bytes: int,
                              field: str = "file") -> bytes:
    """The bytes of the form field `field` of a multipart/form-data body, refusing (413) as soon as the file passes
    `max_bytes` or the whole body passes `max_bytes` plus a little room for the other parts and headers."""
    ctype, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadRefused("send the photo as multipart/form-data with a field named 'file'", 415)
    if len(boundary) > 200:
        raise UploadRefused("the multipart boundary is too long")
    parts: list[dict] = []
    header_name = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])
        if len(header_value) > 4096:
            raise UploadRefused("a multipart header is too long")

    def on_header_end() -> None:
        parts[-1]["headers"][bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        part["data"].extend(data[start:end])
        if len(part["data"]) > max_bytes:
            raise UploadRefused(f"the photo is larger than {max_bytes / (1 << 20):g} MB", 413)

    def on_headers_finished() -> None:
        if len(parts) > 8:
            raise UploadRefused("too many parts in the upload form")

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data})
    total = 0
    body_limit = max_bytes + (64 << 10)
    async for chunk in chunks:
        total += len(chunk)
        if total > body_limit:
            raise UploadRefused(f"the photo is larger than {max_bytes / (1 << 20):g} MB", 413)
        try:
            parser.write(chunk)
        except UploadRefused:
            raise
        except Exception:  # noqa: BLE001 - python-multipart raises its own errors for malformed bodies
            raise UploadRefused("the upload form is malformed") from None
    for part in parts:
        _, opts = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if opts.get(b"name") == field.encode():
            return bytes(part["data"])
    raise UploadRefused(f"the upload has no field named '{field}'")


def open_photo(data: bytes, limits: UploadLimits = UploadLimits()) -> Image.Image:
    """Bytes -> an RGB PIL image reduced to at most WORKING_SIDE, or UploadRefused saying what is wrong with it."""
    if not data:
        raise UploadRefused("the upload is empty")
    if len(data) > limits.max_bytes:
        raise UploadRefused(f"the photo is larger than {limits.max_bytes / (1 << 20):g} MB", 413)
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise UploadRefused("that file is not a PNG, JPEG or WebP photo", 415)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            w, h = img.size
            if w * h > limits.max_pixels:
                raise UploadRefused(f"the photo is {w}x{h} pixels; at most {limits.max_pixels / 1e6:g} megapixels, "
                                    "please use a smaller copy", 413)
            if min(w, h) < limits.min_side:
                raise UploadRefused(f"the photo is only {w}x{h} pixels; it needs at least {limits.min_side} pixels "
                                    "on each side")
            if fmt == "JPEG":
                img.draft("RGB", (WORKING_SIDE, WORKING_SIDE))  # decode at 1/2, 1/4 or 1/8 scale: far less memory
            img.load()
    except UploadRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadRefused(f"the photo has too many pixels; at most {limits.max_pixels / 1e6:g} megapixels",
                            413) from None
    except UnidentifiedImageError:
        raise UploadRefused("that file is not a PNG, JPEG or WebP photo we can read", 415) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise UploadRefused("the photo file is damaged or cut short") from None
    if max(img.size) > WORKING_SIDE:
        img.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # A cut-out on transparency is a product shot: put it on white, as the training photos are.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")
