"""Training data: a folder of images or a StyleGAN2-ADA dataset zip, streamed.

The zip layout is the one the reference's dataset tool writes: image files (PNG/JPEG/...) anywhere in the
archive plus an optional `dataset.json` of the form `{"labels": [["00000/img00000000.png", 6], ...]}` (or
`{"labels": null}`). Integer labels become one-hot class vectors; list labels are used as given.

Nothing is held in memory but the file names: each worker opens the zip lazily on its first item, so the
dataset works with `DataLoader(num_workers=N)` on any size of archive. All checks that can fail (no images,
mixed sizes, sizes the network cannot make, labels that do not match the files) run in the constructor, so
a bad dataset fails with one clear `DatasetError` before any training starts.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from ..errors import UserError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm"}


class DatasetError(UserError):
    """A dataset that cannot be trained on; the message says which file and why."""


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
            with zipfile.ZipFile(p) as zf:
                names = sorted(n for n in zf.namelist() if _is_image(n))
        elif p.exists():
            raise DatasetError(f"{self.path}: not a folder or a zip archive")
        else:
            raise DatasetError(f"{self.path}: no such file or folder")
        if not names:
            raise DatasetError(f"{self.path}: contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        if max_images is not None:
            names = names[:max_images]
        self.names: list[str] = names

        labels = self._read_labels() if use_labels else None
        if use_labels and labels is None:
            raise DatasetError(f"{self.path}: --cond needs labels, but there is no dataset.json with labels")
        self._labels, self.label_kind = self._encode_labels(labels) if labels is not None else (None, "none")

        self.width, self.height = self._check_sizes() if check_sizes else self._image_size(self.names[0])

    # -- files -------------------------------------------------------------------------------------------

    def _open_zip(self) -> zipfile.ZipFile:
        # One handle per process: DataLoader workers fork/spawn with the handle dropped (see __getstate__).
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

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
        try:
            if self.kind == "zip":
                zf = self._open_zip()
                if "dataset.json" not in zf.namelist():
                    return None
                raw = zf.read("dataset.json")
            else:
                f = Path(self.path) / "dataset.json"
                if not f.is_file():
                    return None
                raw = f.read_bytes()
            meta = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{self.path}: dataset.json is not valid JSON ({e})") from None
        if not isinstance(meta, dict) or "labels" not in meta:
            raise DatasetError(f"{self.path}: dataset.json must be an object with a 'labels' key")
        return meta["labels"]

    def _encode_labels(self, labels: list) -> tuple[np.ndarray, str]:
        if not isinstance(labels, list):
            raise DatasetError(f"{self.path}: dataset.json 'labels' must be a list of [file, label] pairs or null")
        table: dict[str, object] = {}
        for entry in labels:
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
                raise DatasetError(f"{self.path}: dataset.json label entry {entry!r} is not a [file, label] pair")
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
            num_classes = max(values) + 1
            onehot = np.zeros((len(values), num_classes), dtype=np.float32)
            onehot[np.arange(len(values)), values] = 1
            return onehot, "class"
        try:
            arr = np.asarray(values, dtype=np.float32)
        except (ValueError, TypeError):
            raise DatasetError(
                f"{self.path}: labels must be all class indices or all equal-length number lists"
            ) from None
        if arr.ndim != 2:
            raise DatasetError(f"{self.path}: labels must be all class indices or all equal-length number lists")
        return arr, "vector"

    def _image_size(self, name: str) -> tuple[int, int]:
        try:
            with self._open_file(name) as f, Image.open(f) as img:
                return img.size
        except (OSError, Image.DecompressionBombError) as e:
            raise DatasetError(f"{self.path}: cannot read image {name} ({e})") from None

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
        if not _is_pow2(max(w, h)):
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
        return 0 if self._labels is None else int(self._labels.shape[1])

    def info(self) -> DatasetInfo:
        """Summary for building the networks."""
        return DatasetInfo(self.path, self.num_images, self.width, self.height, self.label_dim, self.label_kind)

    def __len__(self) -> int:
        return self.num_images * (2 if self.mirror else 1)

    def label(self, index: int) -> torch.Tensor:
        """The label vector of item `index` (size 0 when unlabelled)."""
        if self._labels is None:
            return torch.zeros(0)
        return torch.from_numpy(self._labels[index % self.num_images])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw = index % self.num_images
        name = self.names[raw]
        with self._open_file(name) as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(img.convert("RGB"))
        if arr.shape[:2] != (self.height, self.width):
            raise DatasetError(f"{self.path}: {name} is {arr.shape[1]}x{arr.shape[0]}, expected {self.width}x{self.height}")
        if index >= self.num_images:
            arr = arr[:, ::-1]
        img_t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        return img_t, self.label(raw)

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
