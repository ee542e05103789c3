"""The JSON API: designs, directions, gallery pages, crossbreeding and health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ...edit.breed import MAX_CHILDREN
from ..site import SiteDep
from .params import MAX_SEED, CrossQ, EditQ, LatentQ, MixQ, PsiQ, SeedQ, StateQ, state_of

router = APIRouter(tags=["api"])
Parent = Annotated[str, Query(min_length=1, max_length=4096, description="A seed number or a design's share token.")]
Blend = Annotated[float, Query(ge=0.0, le=1.0, description="How much of parent b (0 = all a, 1 = all b).")]


@router.get("/api/state")
async def state_info(request: Request, site: SiteDep, state: StateQ = None, seed: SeedQ = None,
                     latent: LatentQ = None, cross: CrossQ = None, psi: PsiQ = None, edit: EditQ = [],
                     mix: MixQ = []) -> dict[str, Any]:
    """Validate a design; returns its canonical token, fields, image and share URLs."""
    st = state_of(site.engine, state, seed, latent, psi, edit, mix, cross)
    token = st.encode()
    return {"token": token, "state": st.to_dict(), "png": f"/api/render.png?state={token}",
            "webp": f"/api/render.webp?state={token}", "share": site.share_url(request, token)}


@router.get("/api/directions")
async def directions(site: SiteDep) -> dict[str, Any]:
    """The editor's sliders (named, visible directions with a measured visible effect) and the bounds every
    parameter must keep."""
    e = site.engine
    return {"model": e.model_id, "directions": e.visible_directions(), "limits": e.limits(), "note": e.directions_note}


@router.get("/api/gallery")
async def gallery(site: SiteDep, page: Annotated[int, Query(ge=0, le=MAX_SEED)] = 0,
                  size: Annotated[int, Query(ge=1, le=200)] = 60) -> dict[str, Any]:
    """One page of the endless gallery: the pre-rendered seeds first, then every other seed in order. Tiles not
    on disk yet are rendered when asked for (`ready` says which are on disk now)."""
    size = min(size, site.config.max_page_size)
    seeds = site.gallery_seeds(page, size)
    items = [{"seed": s, "image": f"/api/sneaker/{s}.webp", "permalink": f"/s/{s}",
              "prerendered": site.engine.gallery_file(site.engine.seed_state(s), "webp") is not None,
              "ready": site.tile_ready(s)} for s in seeds]
    more = bool(seeds) and (page + 1) * size <= MAX_SEED
    return {"page": page, "size": size, "items": items, "next": page + 1 if more else None,
            "prerendered": site.prerendered()}


@router.get("/api/breed", tags=["crossbreed"])
async def breed(request: Request, site: SiteDep, a: Parent, b: Parent, coarse: Blend = 0.5, middle: Blend = 0.5,
                fine: Blend = 0.5, count: Annotated[int, Query(ge=1, le=MAX_CHILDREN)] = 6,
                variety: Annotated[float, Query(ge=0.0, le=1.0)] = 0.3,
                row: Annotated[int, Query(ge=0, le=MAX_SEED)] = 0) -> dict[str, Any]:
    """A row of children of two parents (seeds or design tokens), each mixing the parents' coarse / middle / fine
    styles around the given blend. Each child is a design: open it in the editor, share it, breed it again."""
    e = site.engine
    pa, pb = e.parent(a), e.parent(b)
    kids = e.children(pa, pb, (coarse, middle, fine), count=count, variety=variety, row=row)
    out = []
    for k in kids:
        token = k.encode()
        out.append({"token": token, "blend": dict(zip(("coarse", "middle", "fine"), k.cross.blend)),
                    "image": f"/api/render.webp?state={token}", "edit": f"/edit?state={token}",
                    "share": site.share_url(request, token)})
    return {"a": {"token": pa.encode(), "image": f"/api/render.webp?state={pa.encode()}"},
            "b": {"token": pb.encode(), "image": f"/api/render.webp?state={pb.encode()}"},
            "row": row, "children": out}


@router.get("/api/health")
async def health(site: SiteDep) -> dict[str, Any]:
    """Model, queue, cache and gallery counters."""
    e, pool, cache = site.engine, site.pool, site.cache
    s = pool.stats
    filler = site.filler
    return {"model": e.model_id, "fallback": site.source.is_fallback, "banner": site.source.banner,
            "size": [e.width, e.height], "psi": e.config.psi, "gallery": site.prerendered(),
            "tiles": {"written": site.tiles.writes, "filled": filler.done if filler else 0,
                      "fill_target": site.config.gallery_fill},
            "pool": {"pending": pool.pending, "submitted": s.submitted, "rejected": s.rejected,
                     "skipped": s.skipped, "batches": s.batches, "rendered": s.rendered,
                     "mean_batch": s.rendered / s.batches if s.batches else 0.0},
            "cache": {"entries": len(cache), "bytes": cache.size, "hits": cache.hits, "misses": cache.misses},
            "jobs_pending": site.jobs.pending()}
