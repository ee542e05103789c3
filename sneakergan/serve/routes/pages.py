"""Server-rendered pages: home, permalinks, the gallery, the editor and crossbreeding."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...edit.state import BLEND_LEVELS
from ..engine import MIX_LEVELS
from ..site import Site, SiteDep
from .params import MAX_SEED, Seed

router = APIRouter(include_in_schema=False)


def page(site: Site, request: Request, name: str, page_name: str, cache: str = "no-cache", **extra: Any) -> HTMLResponse:
    resp = site.templates.TemplateResponse(request, name, site.page_context(page_name, **extra))
    resp.headers["Cache-Control"] = cache
    return resp


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, site: SiteDep) -> HTMLResponse:
    return page(site, request, "home.html", "home", cache="no-store", seed=secrets.randbelow(MAX_SEED + 1),
                psi=site.engine.config.psi, permalink=False)


@router.get("/s/{seed}", response_class=HTMLResponse)
async def permalink(request: Request, site: SiteDep, seed: Seed) -> HTMLResponse:
    return page(site, request, "home.html", "home", seed=seed, psi=site.engine.config.psi, permalink=True)


@router.get("/gallery", response_class=HTMLResponse)
async def gallery(request: Request, site: SiteDep) -> HTMLResponse:
    return page(site, request, "gallery.html", "gallery", page_size=site.config.page_size,
                prerendered=site.prerendered())


@router.get("/edit", response_class=HTMLResponse)
async def editor(request: Request, site: SiteDep, state: Annotated[str | None, Query(max_length=4096)] = None,
                 seed: Annotated[int | None, Query(ge=0, le=MAX_SEED)] = None) -> Response:
    engine = site.engine
    if state is None:
        st = engine.seed_state(seed if seed is not None else secrets.randbelow(MAX_SEED + 1))
        return RedirectResponse(f"/edit?state={st.encode()}", status_code=303)
    st = engine.decode(state)
    token = st.encode()
    mixes = {layers: s for s, layers in st.mixes if layers in MIX_LEVELS}
    base = st.replace(edits=(), mixes=())
    directions = engine.visible_directions()
    data = {"state": st.to_dict(), "token": token, "directions": directions, "limits": engine.limits(),
            "model": engine.model_id, "base_url": site.base_url(request),
            "cross": base.encode() if st.cross is not None else None, "download_side": site.config.download_side}
    return page(site, request, "edit.html", "edit", state=st, token=token, edits=dict(st.edits), mixes=mixes,
                directions=[{"name": d["id"], "label": d["name"], "max": d["max"]} for d in directions],
                mix_levels=MIX_LEVELS, limits=engine.limits(), data=data, share_url=site.share_url(request, token),
                download_side=site.config.download_side)


@router.get("/breed", response_class=HTMLResponse)
async def breed(request: Request, site: SiteDep, a: Annotated[str | None, Query(max_length=4096)] = None,
                b: Annotated[str | None, Query(max_length=4096)] = None) -> HTMLResponse:
    engine = site.engine
    # Parents from the link when given (checked, so a broken link is a clear error page), else two random seeds.
    pa = engine.parent(a) if a else engine.seed_state(secrets.randbelow(MAX_SEED + 1))
    pb = engine.parent(b) if b else engine.seed_state(secrets.randbelow(MAX_SEED + 1))
    data = {"a": pa.encode(), "b": pb.encode(), "levels": list(BLEND_LEVELS), "model": engine.model_id,
            "base_url": site.base_url(request)}
    return page(site, request, "breed.html", "breed", a=pa.encode(), b=pb.encode(), levels=BLEND_LEVELS, data=data)
