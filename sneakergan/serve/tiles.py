"""Gallery tiles rendered on demand: a disk cache the site fills as visitors ask, and in the background while idle.

The site must answer as soon as it starts, not after pre-rendering thousands of images, so a tile that no
`gallery build` made is rendered when first asked for, written here, and read back afterwards (also after a
restart). While no visitor is waiting, `GalleryFiller` renders the next tiles in gallery order, so the first
pages are soon instant. Files live under the gallery folder in a subfolder named by the weights hash and the
truncation, so a new model or another psi never shows stale pictures:
```
NAME.gallery/live/<sha256[:16]>-psi0.7/img/000/0000042.webp
```
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Awaitable, Callable

from .gallery import seed_file

log = logging.getLogger("sneakergan.serve")


class TileStore:
    """WebP tiles of plain seeds for one model and truncation, one file per seed, written atomically."""

    def __init__(self, root: Path, model_sha256: str, psi: float, ext: str = "webp") -> None:
        self.root = Path(root) / "live" / f"{model_sha256[:16]}-psi{psi:g}"
        self.ext = ext
        self.writes = 0

    def path(self, seed: int) -> Path:
        return self.root / seed_file(seed, self.ext)

    def has(self, seed: int) -> bool:
        return self.path(seed).is_file()

    def get(self, seed: int) -> bytes | None:
        try:
            return self.path(seed).read_bytes()
        except OSError:
            return None

    def put(self, seed: int, data: bytes) -> None:
        """Write a tile (temp file + rename, so a reader never sees half a file); a full disk only logs."""
        target = self.path(seed)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tile.", dir=target.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
            self.writes += 1
        except OSError as e:  # the cache is an optimisation: serving goes on without it
            log.warning("cannot write gallery tile %s: %s", target, e)
            with contextlib.suppress(Exception):
                os.unlink(tmp)  # type: ignore[possibly-undefined]


class GalleryFiller:
    """Renders the first `count` gallery tiles in the background, only while the render pool is idle.

    `seeds_page(page, size)` gives the gallery's order; `missing(seed)` says whether a tile still needs rendering;
    `render(seeds)` renders and stores a batch (through the same pool visitors use, so a visitor waits at most one
    background batch); `busy()` is true while visitors' renders are queued.
    """

    def __init__(self, count: int, seeds_page: Callable[[int, int], list[int]], missing: Callable[[int], bool],
                 render: Callable[[list[int]], Awaitable[None]], busy: Callable[[], bool], batch: int = 8,
                 idle_s: float = 0.25) -> None:
        self.count, self.seeds_page, self.missing, self.render, self.busy = count, seeds_page, missing, render, busy
        self.batch, self.idle_s = batch, idle_s
        self.done = 0       # tiles rendered by the filler
        self.checked = 0    # gallery positions looked at
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.count > 0 and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    @property
    def finished(self) -> bool:
        return self.checked >= self.count

    async def _run(self) -> None:
        page_size = 100
        try:
            while self.checked < self.count:
                page = self.checked // page_size
                seeds = self.seeds_page(page, page_size)[self.checked % page_size:]
                seeds = seeds[: self.count - self.checked]
                if not seeds:
                    break
                todo = [s for s in seeds if await asyncio.to_thread(self.missing, s)]
                for i in range(0, len(todo), self.batch):
                    while self.busy():  # visitors first
                        await asyncio.sleep(self.idle_s)
                    chunk = todo[i: i + self.batch]
                    try:
                        await self.render(chunk)
                        self.done += len(chunk)
                    except Exception as e:  # noqa: BLE001 - overload or a render error: back off, never crash
                        log.info("gallery filler paused: %s", e)
                        await asyncio.sleep(1.0)
                    await asyncio.sleep(0)
                self.checked += len(seeds)
        except asyncio.CancelledError:
            raise
