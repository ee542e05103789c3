"""The pre-rendered gallery: WebP files plus an index JSON, built once by `sneakergan gallery build`.

Layout (beside the model as `NAME.gallery/` unless `--out` says otherwise):
```
index.json           {"format", "model_sha256", "psi", "width", "height", "ext", "items": [{"seed", "file"}, ...]}
img/000/0000000.webp one file per seed, 1000 per folder
```
The index records the model's weights hash and the truncation it was rendered at; the server ignores an index
made for other weights or another psi, so a stale gallery never shows pictures the model would not draw.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .images import encode_image

FORMAT = "sneakergan-gallery/1"


def default_gallery_dir(model_path: Path) -> Path:
    """`models/demo64x48.safetensors` -> `models/demo64x48.gallery`."""
    from ..modelfile import model_paths

    weights, _ = model_paths(model_path)
    return weights.with_name(weights.name[: -len(".safetensors")] + ".gallery")


def seed_file(seed: int, ext: str = "webp") -> str:
    return f"img/{seed // 1000:03d}/{seed:07d}.{ext}"


@dataclass
class GalleryIndex:
    """Seeds that have a pre-rendered file, in display order."""

    root: Path
    model_sha256: str
    psi: float
    width: int = 0
    height: int = 0
    ext: str = "webp"
    files: dict[int, str] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return list(self.files)

    def path(self, seed: int) -> Path | None:
        rel = self.files.get(seed)
        return self.root / rel if rel is not None else None

    def to_json(self) -> dict:
        return {"format": FORMAT, "model_sha256": self.model_sha256, "psi": self.psi, "width": self.width,
                "height": self.height, "ext": self.ext,
                "items": [{"seed": s, "file": f} for s, f in self.files.items()]}

    def save(self) -> None:
        """Atomically rewrite index.json (a crash mid-build leaves the last good index)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".tmp", dir=self.root)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f, separators=(",", ":"))
        os.replace(tmp, self.root / "index.json")


def load_index(root: Path, model_sha256: str | None = None, psi: float | None = None) -> GalleryIndex | None:
    """The gallery index in `root`, or None when absent, unreadable, or made for other weights / another psi."""
    try:
        data = json.loads((Path(root) / "index.json").read_text())
        if data.get("format") != FORMAT:
            return None
        idx = GalleryIndex(root=Path(root), model_sha256=str(data["model_sha256"]), psi=float(data["psi"]),
                           width=int(data.get("width", 0)), height=int(data.get("height", 0)),
                           ext=str(data.get("ext", "webp")),
                           files={int(it["seed"]): str(it["file"]) for it in data["items"]})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if model_sha256 is not None and idx.model_sha256 != model_sha256:
        return None
    if psi is not None and abs(idx.psi - psi) > 1e-9:
        return None
    return idx


def build_gallery(root: Path, seeds: Iterable[int], render: Callable[[list[int]], list[np.ndarray]], model_sha256: str,
                  psi: float, batch_size: int = 16, on_batch: Callable[[int], None] | None = None,
                  checkpoint_every: int = 1000) -> GalleryIndex:
    """Render every seed not already in a matching index to WebP and write the index.

    Resumable: an existing index for the same weights and psi is extended, not redone.
    """
    root = Path(root)
    idx = load_index(root, model_sha256, psi) or GalleryIndex(root=root, model_sha256=model_sha256, psi=psi)
    seeds = list(seeds)
    todo = [s for s in seeds if s not in idx.files]
    if on_batch and len(todo) < len(seeds):
        on_batch(len(seeds) - len(todo))  # resumed: count what is already there
    since_save = 0
    for i in range(0, len(todo), batch_size):
        chunk = todo[i: i + batch_size]
        for seed, arr in zip(chunk, render(chunk)):
            rel = seed_file(seed, idx.ext)
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(encode_image(arr, idx.ext))
            idx.files[seed] = rel
            idx.height, idx.width = int(arr.shape[0]), int(arr.shape[1])
        since_save += len(chunk)
        if since_save >= checkpoint_every:
            idx.save()
            since_save = 0
        if on_batch:
            on_batch(len(chunk))
    idx.save()
    return idx
