"""Image endpoints. Images of deterministic states are addressed by URL, so they carry an ETag (weak: equal
pictures, float round-off aside) and a year-long immutable Cache-Control, answer 304 to If-None-Match without
rendering, and come from the site's cache when they can."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...edit.state import EditState
from ..images import FORMATS, MAX_LONG_SIDE
from ..site import Site, SiteDep
from .params import CrossQ, EditQ, LatentQ, MixQ, PsiQ, Seed, SeedQ, StateQ, state_of

router = APIRouter(tags=["images"])
IMMUTABLE = "public, max-age=31536000, immutable"
Fmt = Literal["png", "webp"]
SizeQ = Annotated[int | None, Query(ge=16, le=MAX_LONG_SIDE, description=(
    "Long side in pixels of an upscaled copy (Lanczos); omit for the model's native size."))]
DownloadQ = Annotated[bool, Query(description="Send as an attachment named after the design's share token.")]
IMAGE_RESPONSES = {200: {"content": {"image/png": {}, "image/webp": {}}}, 304: {"description": "not modified"}}


def download_name(token: str, fmt: str, size: int | None, native: int) -> str:
    """`sneaker-<token>.png`, or `sneaker-<token>-1024px-upscaled.png`; very long tokens are shortened by hash."""
    stem = token if len(token) <= 160 else f"{token[:120]}-{hashlib.sha256(token.encode()).hexdigest()[:16]}"
    label = f"-{size}px-upscaled" if size and size > native else (f"-{size}px" if size else "")
    return f"sneaker-{stem}{label}.{fmt}"


async def image_response(site: Site, request: Request, state: EditState, fmt: str, size: int | None = None,
                         download: bool = False) -> Response:
    native = max(site.engine.width, site.engine.height)
    if size == native:
        size = None
    token = state.encode()
    etag = site.engine.etag(token, fmt, size)
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "X-Edit-State": token}
    if size:
        headers["X-Upscaled-From"] = f"{site.engine.width}x{site.engine.height}"
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{download_name(token, fmt, size, native)}"'
    if etag in _if_none_match(request):
        return Response(status_code=304, headers=headers)
    body = await site.image(request, state, fmt, size)
    return Response(body, media_type=FORMATS[fmt], headers=headers)


@router.get("/api/sneaker/{seed}.{fmt}", response_class=Response, responses=IMAGE_RESPONSES)
async def sneaker_image(request: Request, site: SiteDep, seed: Seed, fmt: Fmt) -> Response:
    """The sneaker of a seed at the site's truncation (what the home page, permalinks and gallery show)."""
    return await image_response(site, request, site.engine.seed_state(seed), fmt)


@router.get("/api/render.{fmt}", response_class=Response, responses=IMAGE_RESPONSES)
async def render_image(request: Request, site: SiteDep, fmt: Fmt, state: StateQ = None, seed: SeedQ = None,
                       latent: LatentQ = None, cross: CrossQ = None, psi: PsiQ = None, edit: EditQ = [],
                       mix: MixQ = [], before: bool = False, size: SizeQ = None,
                       download: DownloadQ = False) -> Response:
    """An edited sneaker: by state token, or by parameters (the response's X-Edit-State header gives the token).

    `before=true` renders the same sneaker without edits and mixes; `size=1024` an upscaled copy.
    """
    st = state_of(site.engine, state, seed, latent, psi, edit, mix, cross)
    return await image_response(site, request, site.engine.base_of(st) if before else st, fmt, size, download)


@router.get("/api/render", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def render_png(request: Request, site: SiteDep, state: StateQ = None, seed: SeedQ = None,
                     latent: LatentQ = None, cross: CrossQ = None, psi: PsiQ = None, edit: EditQ = [],
                     mix: MixQ = [], before: bool = False, size: SizeQ = None, download: DownloadQ = False) -> Response:
    """Same as /api/render.png."""
    st = state_of(site.engine, state, seed, latent, psi, edit, mix, cross)
    return await image_response(site, request, site.engine.base_of(st) if before else st, "png", size, download)


def _if_none_match(request: Request) -> set[str]:
    raw = request.headers.get("if-none-match", "")
    tags = {t.strip() for t in raw.split(",") if t.strip()}
    return tags | {t if t.startswith("W/") else f"W/{t}" for t in tags}  # weak comparison, RFC 9110 section 8.8.3.2
