"""The website: "This Sneaker Does Not Exist", assembled by `create_app` from routers and one shared `Site`.

Pages are server-rendered Jinja2 with a little plain JS from static/. Routers (serve/routes/: pages, images, api,
projection, docs) get the engine, cache, pool and jobs through the `SiteDep` dependency; errors become JSON for
the API and plain-words pages for people (serve/errors.py); one middleware adds security headers, answers HEAD
and bounds request bodies (serve/security.py). Renders run in a batching pool off the event loop; past its
queue bound the server answers 503 + Retry-After. The site answers as soon as the model is loaded: gallery tiles
are rendered on demand, kept on disk, and filled in the background while idle (serve/tiles.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import errors
from .model_source import ModelSource, find_model
from .routes import api, docs, images, pages, projection
from .security import BodyLimits, SiteMiddleware
from .site import HERE, ClientGone, ServeConfig, Site  # noqa: F401 - ServeConfig, ClientGone: public names

__all__ = ["ServeConfig", "create_app", "ClientGone"]


def create_app(model_path: str | Path | None = None, config: ServeConfig = ServeConfig(),
               source: ModelSource | None = None) -> FastAPI:
    """Build the site for a model file (None: the shipped demo model, else a labelled fallback)."""
    source = source or find_model(Path(model_path) if model_path else None)
    check_model(source)
    site = Site.build(source, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await site.start()
        try:
            yield
        finally:
            await site.close()

    app = FastAPI(title="This Sneaker Does Not Exist", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None, description="Generated sneakers: images by seed or edit state, directions, "
                                              "gallery pages, crossbreeding, photo projection jobs.")
    app.state.site = site
    # Old names, for callers that reached into app.state before the routers existed.
    app.state.engine, app.state.cache, app.state.pool, app.state.jobs = site.engine, site.cache, site.pool, site.jobs
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    docs.mount_assets(app)
    for router in (pages.router, images.router, api.router, projection.router, docs.router):
        app.include_router(router)
    errors.install(app)
    # The upload limit leaves room for the multipart framing around the photo.
    limits = BodyLimits(uploads={projection.UPLOAD_PATH: config.upload.max_bytes + (64 << 10)})
    app.add_middleware(SiteMiddleware, limits=limits)
    return app


def check_model(source: ModelSource) -> None:
    """Refuse a broken model file before serving it (E17's check in model_source, when it is there)."""
    from . import model_source

    check = getattr(model_source, "check_model", None)
    if callable(check):
        check(source.path)
