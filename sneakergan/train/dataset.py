"""Training data: a folder of images or a StyleGAN2-ADA dataset zip, streamed.

The zip layout is the one the reference's dataset tool writes: image files (PNG/JPEG/...) anywhere in the
archive plus an optional `dataset.json` of the form `{"labels": [["00000/img00000000.png", 6], ...]}` (or
`{"labels": null}`). Integer labels become one-hot class vectors; list labels are used as given.

Nothing is held in memory but the file names: each worker opens the zip lazily on its first item, so the
dataset works with `DataLoader(num_workers=N)` on any size of archive. All checks that can fail (no images,
mixed sizes, sizes the network cannot make, labels that do not match the files) run in the constructor, so
a bad dataset fails with one clear `DatasetError` before any training starts.

Hostile archives are bounded: every member's compression method, encryption flag and declared size are checked
from the central directory up front (an image may not declare more than 16 bytes per pixel, so a PNG padded with
2 GiB of zeros is refused before training), members are read only up to that size, and an image that passes the
header check but cannot be decoded (truncated, bad CRC) is skipped with one logged line and replaced by the
next image, so one bad file never kills a run. `verify()` decodes everything up front instead.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from ..errors import UserError

from ..safezip import check_member, open_zip, read_member

log = logging.getLogger("sneakergan.dataset")

MAX_SIDE = 1024  # the largest network resolution
MIN_SIDE = 16
MAX_LABEL_DIM = 65536  # NetworkConfig's c_dim bound
MAX_JSON_BYTES = 256 << 20
BYTES_PER_PIXEL = 16  # above any real encoding of an image (16-bit RGBA raw is 8) plus headroom
MIN_MEMBER_BYTES = 1 << 20
MAX_SKIPS = 16  # consecutive unreadable images before the dataset is declared broken

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm"}


class DatasetError(UserError):
    """A dataset that cannot be trained on; the message says which file and why."""

    def __str__(self) -> str:
        # A DataLoader worker's error comes back as "Caught DatasetError in DataLoader worker ...\n<traceback>";
        # the promise is one line, so show the original message (the traceback's last line).
        text = super().__str__()
        if text.startswith("Caught ") and "\n" in text:
            tail = [ln for ln in text.splitlines() if ln.strip()][-1]
            return tail.split("DatasetError: ", 1)[-1]
        return text


@dataclass(frozen=True)
class DatasetInfo:
    """What training needs to know about a dataset before building the networks."""

    path: str
    num_images: int  # files, before the x-flip mirror
    width: int
    height: int
    label_dim: int  # 0 when unlabelled / labels not used
    label_kind: str  # "none" | "class" | "vector"

    @property
    def resolution(self) -> int:
        """The longer side: the network's `resolution`."""
        return max(self.width, self.height)

    @property
    def aspect(self) -> tuple[int, int]:
        """(width, height) reduced, e.g. (3, 4) for 384x512; (1, 1) for square."""
        g = np.gcd(self.width, self.height)
        return (self.width // g, self.height // g)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not os.path.basename(name).startswith(".")


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


class ImageDataset(torch.utils.data.Dataset):
    """Images as uint8 CHW RGB tensors with float32 label vectors, from a folder or a zip.

    `mirror=True` doubles the dataset with x-flipped copies (index >= num_images is the flipped twin),
    as the reference's `--mirror` does. `use_labels=False` ignores any labels (label vectors of size 0).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        mirror: bool = False,
        use_labels: bool = False,
        max_images: int | None = None,
        check_sizes: bool = True,
    ) -> None:
        self.path = str(path)
        self.mirror = bool(mirror)
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        p = Path(self.path)
        if p.is_dir():
            self.kind = "dir"
            names = sorted(
                str(f.relative_to(p)).replace(os.sep, "/") for f in p.rglob("*") if f.is_file() and _is_image(f.name)
            )
        elif p.is_file() and zipfile.is_zipfile(p):
            self.kind = "zip"
            with open_zip(p, DatasetError) as zf:
                names = sorted(n for n in zf.namelist() if _is_image(n) and not n.endswith("/"))
        elif p.exists():
            raise DatasetError(f"{self.path}: not a folder or a zip archive")
        else:
            raise DatasetError(f"{self.path}: no such file or folder")
        if not names:
            raise DatasetError(f"{self.path}: contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        if max_images is not None:
            names = names[:max_images]
        self.names: list[str] = names
        self.skipped: dict[str, str] = {}  # images this process could not decode: name -> reason
        self.max_member_bytes = MAX_JSON_BYTES  # until the image size is known (the header check)
        self._check_members()

        labels = self._read_labels() if use_labels else None
        if use_labels and labels is None:
            raise DatasetError(f"{self.path}: --cond needs labels, but there is no dataset.json with labels")
        self._labels, self.label_kind = self._encode_labels(labels) if labels is not None else (None, "none")

        self.width, self.height = self._check_sizes() if check_sizes else self._image_size(self.names[0])
        self.max_member_bytes = max(MIN_MEMBER_BYTES, BYTES_PER_PIXEL * self.width * self.height)
        self._check_members()

    # -- files -------------------------------------------------------------------------------------------

    def _open_zip(self) -> zipfile.ZipFile:
        # One handle per process: DataLoader workers fork/spawn with the handle dropped (see __getstate__).
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = open_zip(self.path, DatasetError)
            self._zip_pid = os.getpid()
        return self._zip

    def _check_members(self) -> None:
        """Method, encryption and declared size of every image (the zip's central directory, or the file size)."""
        if self.kind == "dir":
            for name in self.names:
                size = os.path.getsize(os.path.join(self.path, name))
                if size > self.max_member_bytes:
                    raise DatasetError(f"{self.path}: {name} is {size:,} bytes, more than the "
                                       f"{self.max_member_bytes:,} an image of this dataset can need")
            return
        zf = self._open_zip()
        for name in self.names:
            check_member(self.path, zf.getinfo(name), self.max_member_bytes, DatasetError)

    def _read(self, name: str) -> bytes:
        """A member's bytes, at most `max_member_bytes`; any zip or file error is a DatasetError."""
        if self.kind == "zip":
            return read_member(self._open_zip(), self.path, name, self.max_member_bytes, DatasetError)
        try:
            with open(os.path.join(self.path, name), "rb") as f:
                data = f.read(self.max_member_bytes + 1)
        except OSError as e:
            raise DatasetError(f"{self.path}: cannot read {name} ({e.strerror or e})") from None
        if len(data) > self.max_member_bytes:
            raise DatasetError(f"{self.path}: {name} is larger than the {self.max_member_bytes:,} bytes an image "
                               "of this dataset can need")
        return data

    def _open_file(self, name: str):
        if self.kind == "zip":
            return self._open_zip().open(name, "r")
        return open(os.path.join(self.path, name), "rb")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zip"] = None
        state["_zip_pid"] = None
        return state

    def close(self) -> None:
        """Close the zip handle of this process, if open."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def _read_labels(self) -> list | None:
        """The `labels` list of dataset.json, or None when there is none."""
        if self.kind == "zip":
            zf = self._open_zip()
            if "dataset.json" not in zf.namelist():
                return None
            raw = read_member(zf, self.path, "dataset.json", MAX_JSON_BYTES, DatasetError)
        else:
            f = Path(self.path) / "dataset.json"
            if not f.is_file():
                return None
            if f.stat().st_size > MAX_JSON_BYTES:
                raise DatasetError(f"{self.path}: dataset.json is over {MAX_JSON_BYTES >> 20} MiB")
            raw = f.read_bytes()
        try:
            meta = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, and over-long integers
            raise DatasetError(f"{self.path}: dataset.json is not valid JSON ({' '.join(str(e).split())[:120]})") \
                from None
        except RecursionError:
            raise DatasetError(f"{self.path}: dataset.json is not valid JSON (nested too deeply)") from None
        if not isinstance(meta, dict) or "labels" not in meta:
            raise DatasetError(f"{self.path}: dataset.json must be an object with a 'labels' key")
        return meta["labels"]

    def _encode_labels(self, labels: list) -> tuple[np.ndarray, str]:
        if not isinstance(labels, list):
            raise DatasetError(f"{self.path}: dataset.json 'labels' must be a list of [file, label] pairs or null")
        table: dict[str, object] = {}
        for entry in labels:
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
                shown = repr(entry) if len(repr(entry)) < 80 else repr(entry)[:77] + "..."
                raise DatasetError(f"{self.path}: dataset.json label entry {shown} is not a [file, label] pair")
            table[entry[0].replace("\\", "/")] = entry[1]
        missing = [n for n in self.names if n not in table]
        if missing:
            raise DatasetError(
                f"{self.path}: {len(missing)} of {len(self.names)} images have no label in dataset.json "
                f"(first: {missing[0]})"
            )
        names = set(self.names)
        extra = [k for k in table if k not in names]
        if extra:
            raise DatasetError(
                f"{self.path}: dataset.json labels {len(extra)} files that are not images in the dataset "
                f"(first: {extra[0]})"
            )
        values = [table[n] for n in self.names]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            if min(values) < 0:
                raise DatasetError(f"{self.path}: class labels must be >= 0 (found {min(values)})")
            if max(values) >= MAX_LABEL_DIM:
                raise DatasetError(f"{self.path}: class label {max(values)} is too large; at most {MAX_LABEL_DIM:,} "
                                   "classes (labels 0 .. number of classes - 1)")
            # Class indices, not a dense one-hot table: label() makes each vector when it is asked for.
            self._num_classes = max(values) + 1
            return np.asarray(values, dtype=np.int64), "class"
        if not all(isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                   for v in values):
            raise DatasetError(f"{self.path}: labels must be all class indices or all equal-length number lists")
        if len({len(v) for v in values}) != 1 or not 0 < len(values[0]) <= MAX_LABEL_DIM:
            raise DatasetError(f"{self.path}: labels must be all class indices or all equal-length number lists "
                               f"(1 .. {MAX_LABEL_DIM:,} numbers)")
        arr = np.asarray(values, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise DatasetError(f"{self.path}: label vectors must be finite numbers")
        return arr, "vector"

    def _image_size(self, name: str) -> tuple[int, int]:
        try:
            with self._open_file(name) as f, Image.open(f) as img:
                return img.size
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - Pillow plugins and zipfile raise many types on hostile headers
            raise DatasetError(f"{self.path}: cannot read image {name} ({_reason(e)})") from None

    def _check_sizes(self) -> tuple[int, int]:
        """Read every image header (not the pixels) and insist on one size."""
        first = self._image_size(self.names[0])
        for name in self.names[1:]:
            size = self._image_size(name)
            if size != first:
                raise DatasetError(
                    f"{self.path}: images have mixed sizes: {self.names[0]} is {first[0]}x{first[1]}, "
                    f"{name} is {size[0]}x{size[1]}; resize them all to one size (sneakergan prepare does)"
                )
        w, h = first
        if not (_is_pow2(max(w, h)) and MIN_SIDE <= max(w, h) <= MAX_SIDE):
            raise DatasetError(
                f"{self.path}: images are {w}x{h}; the longer side must be a power of two (16 ... 1024)"
            )
        return first

    # -- Dataset -----------------------------------------------------------------------------------------

    @property
    def num_images(self) -> int:
        return len(self.names)

    @property
    def label_dim(self) -> int:
        if self._labels is None:
            return 0
        return self._num_classes if self.label_kind == "class" else int(self._labels.shape[1])

    def info(self) -> DatasetInfo:
        """Summary for building the networks."""
        return DatasetInfo(self.path, self.num_images, self.width, self.height, self.label_dim, self.label_kind)

    def __len__(self) -> int:
        return self.num_images * (2 if self.mirror else 1)

    def label(self, index: int) -> torch.Tensor:
        """The label vector of item `index` (size 0 when unlabelled)."""
        if self._labels is None:
            return torch.zeros(0)
        row = self._labels[index % self.num_images]
        if self.label_kind == "class":
            onehot = torch.zeros(self._num_classes)
            onehot[int(row)] = 1
            return onehot
        return torch.from_numpy(row)

    def decode(self, name: str) -> np.ndarray:
        """One image as uint8 HxWx3; a DatasetError naming it when it cannot be read or has the wrong size."""
        data = self._read(name)
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.size != (self.width, self.height):
                    raise DatasetError(f"{self.path}: {name} is {img.size[0]}x{img.size[1]}, expected "
                                       f"{self.width}x{self.height}")
                arr = np.asarray(img.convert("RGB"))
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - truncated/corrupt data: OSError, SyntaxError, ValueError, ...
            raise DatasetError(f"{self.path}: cannot decode {name} ({_reason(e)})") from None
        return arr

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw = index % self.num_images
        for _ in range(min(MAX_SKIPS, self.num_images)):
            name = self.names[raw]
            try:
                arr = self.decode(name)
                break
            except DatasetError as e:
                # Skip and report: one bad file must not end a run of days; the next image stands in.
                if name not in self.skipped:
                    self.skipped[name] = str(e)
                    log.warning("skipping an unreadable image: %s", e)
                raw = (raw + 1) % self.num_images
        else:
            raise DatasetError(f"{self.path}: {min(MAX_SKIPS, self.num_images)} images in a row cannot be read "
                               f"(last: {self.skipped.get(name, name)}); check the dataset")
        if index >= self.num_images:
            arr = arr[:, ::-1]
        img_t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        return img_t, self.label(raw)

    def verify(self) -> dict[str, str]:
        """Decode every image now (instead of skipping bad ones during training): {name: reason} of the bad ones."""
        bad = {}
        for name in self.names:
            try:
                self.decode(name)
            except DatasetError as e:
                bad[name] = str(e)
        return bad

    def check_network(self, img_width: int, img_height: int, c_dim: int) -> None:
        """Raise DatasetError when the images or labels do not fit a network of this shape."""
        if (self.width, self.height) != (img_width, img_height):
            raise DatasetError(
                f"{self.path}: images are {self.width}x{self.height} but the network makes {img_width}x{img_height}"
            )
        if c_dim != self.label_dim:
            raise DatasetError(
                f"{self.path}: the network expects {c_dim} label values per image, the dataset has {self.label_dim}"
            )


class InfiniteSampler(torch.utils.data.Sampler):
    """An endless, seeded, resumable stream of indices, split across ranks.

    The global stream is epoch after epoch of `torch.randperm(n, generator=seed + epoch)`; rank r of w takes
    positions r, r + w, r + 2w, ... Starting at global position `start` (= images already seen, cur_nimg)
    continues a killed run with exactly the data order it would have had. Unlike DistributedSampler it needs
    no set_epoch and can resume in the middle of an epoch.
    """

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0, shuffle: bool = True):
        if size <= 0:
            raise ValueError("InfiniteSampler needs a non-empty dataset")
        self.size, self.seed, self.rank, self.world_size = size, int(seed), rank, world_size
        self.start, self.shuffle = int(start), shuffle

    def _epoch(self, epoch: int) -> Sequence[int]:
        if not self.shuffle:
            return range(self.size)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        pos = self.start + self.rank
        epoch = pos // self.size
        order = self._epoch(epoch)
        while True:
            e = pos // self.size
            if e != epoch:
                epoch, order = e, self._epoch(e)
            yield order[pos % self.size]
            pos += self.world_size


def open_dataset(path: str | os.PathLike, mirror: bool = False, use_labels: bool = False) -> ImageDataset:
    """Open and check a dataset (folder or zip); raises DatasetError with one clear line."""
    return ImageDataset(path, mirror=mirror, use_labels=use_labels)


def to_float(images: torch.Tensor, invert: bool = False) -> torch.Tensor:
    """uint8 [N, C, H, W] in 0..255 -> float32 in [-1, 1]; `invert` gives the negative image (255 - x)."""
    x = images.to(torch.float32) * (1 / 127.5) - 1
    return -x if invert else x
