"""Everything the routes share, in one object the app holds and routes receive through a dependency.

Routes never reach for globals: `site: SiteDep` gives them the engine, the image cache, the render pool, the
job runner, the tile store, the templates and the settings. The image path (memory cache -> pre-rendered gallery
-> live tiles -> render pool) lives here because pages, the gallery, downloads and the filler all use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from ..edit.state import EditState
from .cache import BytesLRU
from .engine import Engine, EngineConfig, RenderKey
from .jobs import JobRunner
from .model_source import ModelSource
from .pool import BatchPool, PoolConfig
from .tiles import GalleryFiller, TileStore
from .uploads import UploadLimits

HERE = Path(__file__).parent
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class ServeConfig:
    """Everything `sneakergan serve` can tune."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    cache_bytes: int = 64 << 20
    page_size: int = 60
    max_page_size: int = 200
    upload: UploadLimits = field(default_factory=UploadLimits)
    max_project_jobs: int = 2
    base_url: str | None = None      # share links start with this; None: the address the server listens on
    gallery_fill: int = 0            # tiles the server renders in the background while idle (serve sets 10,000)
    max_live_tiles: int = 100_000    # seeds below this are kept on disk when rendered (the gallery's first pages);
                                     # random home-page seeds are not, so the disk cache stays bounded (~0.5 GB)
    fill_batch: int = 8
    download_side: int = 1024        # the long side of the upscaled download


class ClientGone(Exception):
    """The client disconnected (e.g. an aborted slider request) before its image was rendered."""


@dataclass
class Site:
    """The running site's parts."""

    config: ServeConfig
    source: ModelSource
    engine: Engine
    cache: BytesLRU
    pool: BatchPool[RenderKey, bytes]
    jobs: JobRunner
    tiles: TileStore
    templates: Jinja2Templates
    asset_version: str
    filler: GalleryFiller | None = None
    effects_task: "asyncio.Future[Any] | None" = None

    @classmethod
    def build(cls, source: ModelSource, config: ServeConfig) -> "Site":
        from .gallery import default_gallery_dir

        engine = Engine.load(source, config.engine)
        tiles = TileStore(config.engine.gallery_dir or default_gallery_dir(source.path), engine.weights_sha256,
                          config.engine.psi)
        return cls(config=config, source=source, engine=engine, cache=BytesLRU(config.cache_bytes),
                   pool=BatchPool(engine.render_keys, config.pool),
                   jobs=JobRunner(engine.project, max_pending=config.max_project_jobs), tiles=tiles,
                   templates=Jinja2Templates(directory=str(HERE / "templates")), asset_version=asset_version())

    # ---- lifecycle ----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.pool.start()
        self.effects_task = asyncio.ensure_future(asyncio.to_thread(self._warm_up))
        self.filler = GalleryFiller(self.config.gallery_fill, self.gallery_seeds, self.tile_missing,
                                    self.fill_tiles, busy=lambda: self.pool.pending > 0,
                                    batch=self.config.fill_batch)
        self.filler.start()

    def _warm_up(self) -> None:
        """Background work right after start: which sliders do something, then the projector's first-use costs."""
        self.engine.measure_effects()
        self.engine.warm_projection()

    async def close(self) -> None:
        if self.filler is not None:
            await self.filler.stop()
        if self.effects_task is not None:
            with contextlib.suppress(Exception):
                await self.effects_task
        await self.pool.close()
        self.jobs.close()

    # ---- links --------------------------------------------------------------------------------------------------
    def base_url(self, request: Request) -> str:
        """Where share links point: the configured base URL, else the address this server listens on (never
        the request's Host header, which a client chooses)."""
        if self.config.base_url:
            return self.config.base_url.rstrip("/")
        server = request.scope.get("server") or ("127.0.0.1", 8000)
        host, port = server[0], server[1]
        host = f"[{host}]" if ":" in str(host) else host
        default = 443 if request.url.scheme == "https" else 80
        return f"{request.url.scheme}://{host}" + ("" if port in (None, default) else f":{port}")

    def share_url(self, request: Request, token: str) -> str:
        return f"{self.base_url(request)}/edit?state={token}"

    # ---- images -------------------------------------------------------------------------------------------------
    async def image(self, request: Request | None, state: EditState, fmt: str, size: int | None = None) -> bytes:
        """Encoded bytes of a state: memory cache, pre-rendered gallery, live tiles, else a render (kept)."""
        key: RenderKey = (state, fmt, size)
        body = self.cache.get(key)
        if body is not None:
            return body
        tile = (size is None and fmt == self.tiles.ext and self.engine.is_site_seed(state)
                and state.seed < self.config.max_live_tiles)
        if tile:
            path = self.engine.gallery_file(state, fmt)
            if path is not None:
                with contextlib.suppress(OSError):
                    body = await asyncio.to_thread(path.read_bytes)
            if body is None:
                body = await asyncio.to_thread(self.tiles.get, state.seed)
        if body is None:
            body = await (self._render(request, key) if request is not None else self.pool.submit(key))
            if tile:
                await asyncio.to_thread(self.tiles.put, state.seed, body)
        self.cache.put(key, body)
        return body

    async def _render(self, request: Request, key: RenderKey) -> bytes:
        """Wait for the pool, giving up (and letting the pool skip the work) when the client disconnects."""
        fut = self.pool.submit_future(key)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({fut, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if fut not in done:
            fut.cancel()
            raise ClientGone()
        return fut.result()

    # ---- the gallery --------------------------------------------------------------------------------------------
    def prerendered(self) -> int:
        return len(self.engine.gallery.files) if self.engine.gallery else 0

    def gallery_seeds(self, page: int, size: int) -> list[int]:
        """Seeds at positions [page*size, (page+1)*size): the index's seeds, then the others in increasing order."""
        pre = self.engine.gallery.seeds if self.engine.gallery else []
        start, stop = page * size, min((page + 1) * size, MAX_SEED + 1)
        out = pre[start:stop] if start < len(pre) else []
        if len(out) < stop - start:
            # Positions past the index walk the remaining seeds upwards, skipping those already shown.
            pre_set = set(pre)
            pos = max(start, len(pre)) - len(pre)  # index among non-prerendered seeds
            seed = _nth_missing(pre, pos)
            while len(out) < stop - start and seed <= MAX_SEED:
                if seed not in pre_set:
                    out.append(seed)
                seed += 1
        return out

    def tile_ready(self, seed: int) -> bool:
        """Whether a seed's gallery tile is on disk (pre-rendered or rendered live)."""
        return self.engine.gallery_file(self.engine.seed_state(seed), self.tiles.ext) is not None or \
            self.tiles.has(seed)

    def tile_missing(self, seed: int) -> bool:
        return not self.tile_ready(seed)

    async def fill_tiles(self, seeds: list[int]) -> None:
        """The filler's batch: render through the pool (visitors' requests interleave), write the tiles."""
        keys = [(self.engine.seed_state(s), self.tiles.ext, None) for s in seeds]
        bodies = await asyncio.gather(*(self.pool.submit(k) for k in keys))
        for seed, body in zip(seeds, bodies):
            await asyncio.to_thread(self.tiles.put, seed, body)

    # ---- pages --------------------------------------------------------------------------------------------------
    def page_context(self, page: str, **extra: Any) -> dict[str, Any]:
        e = self.engine
        return {"page": page, "banner": self.source.banner, "model_name": e.model_id, "width": e.width,
                "height": e.height, "asset_version": self.asset_version, **extra}


async def get_site(request: Request) -> Site:
    """The dependency every route takes (async, so FastAPI does not hop to a worker thread for it)."""
    return request.app.state.site


SiteDep = Annotated[Site, Depends(get_site)]


async def _disconnected(request: Request) -> None:
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return


def _nth_missing(seeds: list[int], n: int) -> int:
    """The n-th (0-based) non-negative integer not in `seeds`."""
    taken = sorted(set(seeds))
    seed = n
    for s in taken:  # each taken seed at or below the candidate pushes it one further
        if s <= seed:
            seed += 1
        else:
            break
    return seed


def asset_version() -> str:
    """Changes when a static file changes, so browsers refetch after an upgrade."""
    h = hashlib.sha256()
    for p in sorted((HERE / "static").glob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:10]


__all__ = ["ServeConfig", "Site", "SiteDep", "get_site", "ClientGone"]
