"""Read real images for the metrics: a folder of images or a StyleGAN2-ADA dataset zip.

Only what the metrics need: a stable order, a content key for the feature cache, and uint8 batches.
Images are converted to RGB; any image whose size differs from the first one is resized to it
(bilinear), so a mixed folder still batches (datasets written by `prepare` are uniform anyway).

Archives are read defensively (sneakergan.safezip): members are checked up front for method, encryption and
declared size, read only up to that size, and every zip or decode failure is one DatasetError naming the member.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from ..errors import UserError

from ..safezip import check_member, open_zip, read_member

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff")
MAX_IMAGE_BYTES = 64 << 20  # 16 bytes per pixel of a 2048 x 2048 image: more than any encoded dataset image
MAX_IMAGE_PIXELS = 4096 * 4096


class DatasetError(UserError):
    """The dataset path is missing, unreadable or holds no images."""


class ImageDataset:
    """The images of a folder (recursive) or a zip, in sorted path order."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            self._zip = None
            self.names = sorted(
                p.relative_to(self.path).as_posix()
                for p in self.path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._zip = open_zip(self.path, DatasetError)
            self.names = sorted(
                n for n in self._zip.namelist() if not n.endswith("/") and Path(n).suffix.lower() in IMAGE_EXTENSIONS
            )
            for name in self.names:
                check_member(self.path, self._zip.getinfo(name), MAX_IMAGE_BYTES, DatasetError)
        elif self.path.exists():
            raise DatasetError(f"{self.path} is neither a folder of images nor a zip file")
        else:
            raise DatasetError(f"dataset {self.path} does not exist")
        if not self.names:
            raise DatasetError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self.path}")
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def content_hash(self) -> str:
        """sha256 over the listing: names with CRC32 and size for a zip, names with size and mtime for a folder.

        The zip's central directory already carries a CRC of every member, so a changed image changes
        the key without reading gigabytes of pixels.
        """
        h = hashlib.sha256()
        for name in self.names:
            if self._zip is not None:
                info = self._zip.getinfo(name)
                h.update(f"{name}\0{info.CRC:08x}\0{info.file_size}\n".encode())
            else:
                st = (self.path / name).stat()
                h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def _open(self, name: str) -> Image.Image:
        if self._zip is not None:
            data = read_member(self._zip, self.path, name, MAX_IMAGE_BYTES, DatasetError)
        else:
            try:
                with open(self.path / name, "rb") as f:
                    data = f.read(MAX_IMAGE_BYTES + 1)
            except OSError as exc:
                raise DatasetError(f"cannot read {name} in {self.path}: {exc.strerror or exc}") from None
            if len(data) > MAX_IMAGE_BYTES:
                raise DatasetError(f"cannot read {name} in {self.path}: more than {MAX_IMAGE_BYTES:,} bytes")
        try:
            with Image.open(io.BytesIO(data)) as src:
                w, h = src.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise DatasetError(f"cannot read {name} in {self.path}: {w}x{h} is over "
                                       f"{MAX_IMAGE_PIXELS:,} pixels")
                img = src.convert("RGB")
        except DatasetError:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data: OSError, SyntaxError, ValueError, ...
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise DatasetError(f"cannot read {name} in {self.path}: {reason}") from None
        if self._size is None:
            self._size = img.size
        elif img.size != self._size:
            img = img.resize(self._size, Image.BILINEAR)
        return img

    def load(self, index: int) -> np.ndarray:
        """Image `index` as uint8 [H, W, 3]."""
        return np.asarray(self._open(self.names[index]), dtype=np.uint8)

    def iter_batches(self, batch_size: int, max_items: int | None = None) -> Iterator[np.ndarray]:
        """uint8 batches [B, H, W, 3] of the first `max_items` images (all when None)."""
        count = len(self) if max_items is None else min(max_items, len(self))
        for start in range(0, count, batch_size):
            yield np.stack([self.load(i) for i in range(start, min(start + batch_size, count))])

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> "ImageDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
