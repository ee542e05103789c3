"""The website: "This Sneaker Does Not Exist" (pages, JSON API, images), built by `create_app`.

Pages are server-rendered Jinja2 with a little plain JS from static/. Images of deterministic states are addressed
by URL, so they carry an ETag (weak: equal pictures, float round-off aside) and a year-long immutable Cache-Control, answer 304 to If-None-Match without
rendering, and live in a bounded LRU on the server. Renders run in a batching pool off the event loop; past its
queue bound the server answers 503 + Retry-After. Every input is validated: bad input is a 4xx with a JSON
`{"error": ...}` (HTML for pages), never a 500.
"""


import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, File, Path as PathParam, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..edit.state import EditState, EditStateError
from .cache import BytesLRU
from .engine import MIX_LEVELS, BadInput, Engine, EngineConfig
from .images import FORMATS
from .jobs import JobRunner
from .model_source import ModelSource, find_model
from .pool import BatchPool, Overloaded, PoolConfig

HERE = Path(__file__).parent
MAX_SEED = 2**32 - 1
IMMUTABLE = "public, max-age=31536000, immutable"
Fmt = Literal["png", "webp"]
Seed = Annotated[int, PathParam(ge=0, le=MAX_SEED, description="Seed in [0, 2^32)")]


@dataclass(frozen=True)
class ServeConfig:
    """Everything `sneakergan serve` can tune."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    cache_bytes: int = 64 << 20
    page_size: int = 60
    max_page_size: int = 200
    max_upload_bytes: int = 10 << 20
    max_project_jobs: int = 2


class ClientGone(Exception):
    """The client disconnected (e.g. an aborted slider request) before its image was rendered."""


def create_app(model_path: str | Path | None = None, config: ServeConfig = ServeConfig(),
               source: ModelSource | None = None) -> FastAPI:
    """Build the site for a model file (None: the shipped demo model, else a labelled fallback)."""
    source = source or find_model(Path(model_path) if model_path else None)
    engine = Engine.load(source, config.engine)
    cache = BytesLRU(config.cache_bytes)
    pool: BatchPool[tuple[EditState, str], bytes] = BatchPool(engine.render_keys, config.pool)
    jobs = JobRunner(engine.project, max_pending=config.max_project_jobs)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    asset_version = _asset_version()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await pool.start()
        try:
            yield
        finally:
            await pool.close()
            jobs.close()

    app = FastAPI(title="This Sneaker Does Not Exist", version="1", lifespan=lifespan,
                  description="Generated sneakers: images by seed or edit state, directions, gallery pages, "
                              "photo projection jobs.")
    app.state.engine, app.state.cache, app.state.pool, app.state.jobs = engine, cache, pool, jobs
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # ---- errors: JSON for the API, a page for people; never a traceback --------------------------------------
    def error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status, headers=headers)
        return templates.TemplateResponse(request, "error.html", page_context(
            "error", status=status, message=message), status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"nothing at {request.url.path[:200]}"
        return error(request, exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error(request, 422, _describe_validation(exc))

    @app.exception_handler(EditStateError)
    async def state_error(request: Request, exc: EditStateError) -> Response:
        return error(request, 400, f"invalid edit state: {exc}")

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> Response:
        return error(request, 400, str(exc))

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> Response:
        return error(request, 503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nobody is listening; nginx's "client closed request"

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:  # a bug: say so plainly, no stack trace
        return error(request, 500, "internal error while handling the request")

    # ---- pages --------------------------------------------------------------------------------------------------
    def page_context(page: str, **extra: Any) -> dict[str, Any]:
        return {"page": page, "banner": source.banner, "model_name": engine.model_id, "width": engine.width,
                "height": engine.height, "asset_version": asset_version, **extra}

    def page(request: Request, name: str, page_name: str, cache: str = "no-cache", **extra: Any) -> HTMLResponse:
        resp = templates.TemplateResponse(request, name, page_context(page_name, **extra))
        resp.headers["Cache-Control"] = cache
        return resp

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        return page(request, "home.html", "home", cache="no-store", seed=secrets.randbelow(MAX_SEED + 1),
                    psi=engine.config.psi, permalink=False)

    @app.get("/s/{seed}", response_class=HTMLResponse, include_in_schema=False)
    async def permalink(request: Request, seed: Seed) -> HTMLResponse:
        return page(request, "home.html", "home", seed=seed, psi=engine.config.psi, permalink=True)

    @app.get("/gallery", response_class=HTMLResponse, include_in_schema=False)
    async def gallery_page(request: Request) -> HTMLResponse:
        return page(request, "gallery.html", "gallery", page_size=config.page_size,
                    prerendered=len(engine.gallery.files) if engine.gallery else 0)

    @app.get("/edit", response_class=HTMLResponse, include_in_schema=False)
    async def editor(request: Request, state: Annotated[str | None, Query(max_length=4096)] = None,
                     seed: Annotated[int | None, Query(ge=0, le=MAX_SEED)] = None) -> Response:
        if state is None:
            st = engine.seed_state(seed if seed is not None else secrets.randbelow(MAX_SEED + 1))
            return RedirectResponse(f"/edit?state={st.encode()}", status_code=303)
        st = engine.decode(state)
        token = st.encode()
        mixes = {layers: s for s, layers in st.mixes if layers in MIX_LEVELS}
        data = {"state": st.to_dict(), "token": token, "directions": engine.visible_directions(),
                "limits": engine.limits(), "model": engine.model_id}
        return page(request, "edit.html", "edit", state=st, token=token, edits=dict(st.edits), mixes=mixes,
                    directions=[{"name": d["id"], "label": d["name"], "max": d["max"]}
                                for d in engine.visible_directions()],
                    mix_levels=MIX_LEVELS, limits=engine.limits(), data=data,
                    share_url=f"{request.base_url}edit?state={token}")

    # ---- images -------------------------------------------------------------------------------------------------
    async def image_response(request: Request, state: EditState, fmt: str) -> Response:
        token = state.encode()
        etag = engine.etag(token, fmt)
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "X-Edit-State": token}
        if etag in _if_none_match(request):
            return Response(status_code=304, headers=headers)
        key = (state, fmt)
        body = cache.get(key)
        if body is None:
            path = engine.gallery_file(state, fmt)
            if path is not None:
                with contextlib.suppress(OSError):
                    body = await asyncio.to_thread(path.read_bytes)
        if body is None:
            body = await _render(request, pool, key)
        cache.put(key, body)
        return Response(body, media_type=FORMATS[fmt], headers=headers)

    @app.get("/api/sneaker/{seed}.{fmt}", tags=["images"], response_class=Response,
             responses={200: {"content": {"image/png": {}, "image/webp": {}}}, 304: {"description": "not modified"}})
    async def sneaker_image(request: Request, seed: Seed, fmt: Fmt) -> Response:
        """The sneaker of a seed at the site's truncation (what the home page, permalinks and gallery show)."""
        return await image_response(request, engine.seed_state(seed), fmt)

    def state_of(state: str | None, seed: int | None, latent: str | None, psi: float | None, edit: list[str],
                 mix: list[str]) -> EditState:
        if state is not None:
            if any(v is not None for v in (seed, latent, psi)) or edit or mix:
                raise BadInput("give either a state token or seed/latent/psi/edit/mix parameters, not both")
            return engine.decode(state)
        return engine.state_from_params(seed, latent, psi, edit, mix)

    StateQ = Annotated[str | None, Query(max_length=4096, description="Edit state token (share links).")]
    SeedQ = Annotated[int | None, Query(ge=0, le=MAX_SEED)]
    LatentQ = Annotated[str | None, Query(max_length=64, description="Projected latent id.")]
    PsiQ = Annotated[float | None, Query(description="Truncation psi.")]
    EditQ = Annotated[list[str], Query(max_length=200, description="DIRECTION:AMOUNT (sigma), repeated.")]
    MixQ = Annotated[list[str], Query(max_length=200, description="SEED:coarse|middle|fine, repeated.")]

    @app.get("/api/render.{fmt}", tags=["images"], response_class=Response,
             responses={200: {"content": {"image/png": {}, "image/webp": {}}}, 304: {"description": "not modified"}})
    async def render_image(request: Request, fmt: Fmt, state: StateQ = None, seed: SeedQ = None,
                           latent: LatentQ = None, psi: PsiQ = None, edit: EditQ = [], mix: MixQ = [],
                           before: bool = False) -> Response:
        """An edited sneaker: by state token, or by parameters (the response's X-Edit-State header gives the token).

        `before=true` renders the same sneaker without edits and mixes.
        """
        st = state_of(state, seed, latent, psi, edit, mix)
        return await image_response(request, engine.base_of(st) if before else st, fmt)

    @app.get("/api/render", tags=["images"], response_class=Response,
             responses={200: {"content": {"image/png": {}}}})
    async def render_png(request: Request, state: StateQ = None, seed: SeedQ = None, latent: LatentQ = None,
                         psi: PsiQ = None, edit: EditQ = [], mix: MixQ = [], before: bool = False) -> Response:
        """Same as /api/render.png."""
        st = state_of(state, seed, latent, psi, edit, mix)
        return await image_response(request, engine.base_of(st) if before else st, "png")

    # ---- JSON API -----------------------------------------------------------------------------------------------
    @app.get("/api/state", tags=["api"])
    async def state_info(request: Request, state: StateQ = None, seed: SeedQ = None, latent: LatentQ = None,
                         psi: PsiQ = None, edit: EditQ = [], mix: MixQ = []) -> dict[str, Any]:
        """Validate a design; returns its canonical token, fields, image and share URLs."""
        st = state_of(state, seed, latent, psi, edit, mix)
        token = st.encode()
        return {"token": token, "state": st.to_dict(), "png": f"/api/render.png?state={token}",
                "webp": f"/api/render.webp?state={token}", "share": f"{request.base_url}edit?state={token}"}

    @app.get("/api/directions", tags=["api"])
    async def directions() -> dict[str, Any]:
        """The editor's sliders (named, visible directions) and the bounds every parameter must keep."""
        return {"model": engine.model_id, "directions": engine.visible_directions(), "limits": engine.limits(),
                "note": engine.directions_note}

    @app.get("/api/gallery", tags=["api"])
    async def gallery_api(page: Annotated[int, Query(ge=0, le=MAX_SEED)] = 0,
                          size: Annotated[int, Query(ge=1, le=config.max_page_size)] = config.page_size
                          ) -> dict[str, Any]:
        """One page of the endless gallery: the pre-rendered seeds first, then every other seed in order."""
        seeds = _gallery_seeds(engine, page, size)
        items = [{"seed": s, "image": f"/api/sneaker/{s}.webp", "permalink": f"/s/{s}",
                  "prerendered": engine.gallery_file(engine.seed_state(s), "webp") is not None} for s in seeds]
        more = bool(seeds) and (page + 1) * size <= MAX_SEED
        return {"page": page, "size": size, "items": items, "next": page + 1 if more else None,
                "prerendered": len(engine.gallery.files) if engine.gallery else 0}

    @app.post("/api/project", tags=["projection"], status_code=202)
    async def project(file: Annotated[UploadFile, File(description="A photo (PNG, JPEG or WebP), at most 10 MB.")]
                      ) -> dict[str, Any]:
        """Start projecting a photo into the model; poll /api/project/{job} for progress and the result state."""
        data = await file.read(config.max_upload_bytes + 1)
        if len(data) > config.max_upload_bytes:
            raise StarletteHTTPException(413, f"upload is larger than {config.max_upload_bytes >> 20} MB")
        if not data:
            raise BadInput("the upload is empty")
        image = await asyncio.to_thread(engine.read_upload, data)
        job = jobs.submit(image)
        return {"job": job.id, "status": job.status, "poll": f"/api/project/{job.id}"}

    @app.get("/api/project/{job}", tags=["projection"])
    async def project_status(job: Annotated[str, PathParam(max_length=64)]) -> dict[str, Any]:
        """Progress of a projection job; when done, `result.state` is the token to open in the editor."""
        j = jobs.get(job)
        if j is None:
            raise StarletteHTTPException(404, f"no projection job {job[:64]!r} (finished jobs are kept a while)")
        return j.to_json()

    @app.get("/api/health", tags=["api"])
    async def health() -> dict[str, Any]:
        """Model, queue and cache counters."""
        s = pool.stats
        return {"model": engine.model_id, "fallback": source.is_fallback, "banner": source.banner,
                "size": [engine.width, engine.height], "psi": engine.config.psi,
                "gallery": len(engine.gallery.files) if engine.gallery else 0,
                "pool": {"pending": pool.pending, "submitted": s.submitted, "rejected": s.rejected,
                         "skipped": s.skipped, "batches": s.batches, "rendered": s.rendered,
                         "mean_batch": s.rendered / s.batches if s.batches else 0.0},
                "cache": {"entries": len(cache), "bytes": cache.size, "hits": cache.hits, "misses": cache.misses},
                "jobs_pending": jobs.pending()}

    return app


def _gallery_seeds(engine: Engine, page: int, size: int) -> list[int]:
    """Seeds at positions [page*size, (page+1)*size): the index's seeds, then the others in increasing order."""
    pre = engine.gallery.seeds if engine.gallery else []
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


async def _render(request: Request, pool: BatchPool, key: Any) -> bytes:
    """Wait for the pool, giving up (and letting the pool skip the work) when the client disconnects."""
    fut = pool.submit_future(key)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({fut, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if fut not in done:
        fut.cancel()
        raise ClientGone()
    return fut.result()


async def _disconnected(request: Request) -> None:
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return


def _if_none_match(request: Request) -> set[str]:
    raw = request.headers.get("if-none-match", "")
    tags = {t.strip() for t in raw.split(",") if t.strip()}
    return tags | {t if t.startswith("W/") else f"W/{t}" for t in tags}  # weak comparison, RFC 9110 section 8.8.3.2


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("path", "query", "body"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _asset_version() -> str:
    """Changes when a static file changes, so browsers refetch after an upgrade."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted((HERE / "static").glob("*")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:10]
