"""`sneakergan curate STORE`: a local page to mark prepared images keep / reject / favourite.

The page (curate_static/) shows a grid sorted by boringness; keyboard shortcuts mark the selected image and
every mark is appended to the store's `marks` table at once through the Store API, so closing the browser or
the server loses nothing. The server holds no state of its own: a restart on the same store shows the same marks.

Images come from the `prepared` table (written by `sneakergan prepare`, files in STORE/prepared/<sha256>.png).
A store that has not been prepared yet falls back to its raw 'ok' images, scored on the fly (fine for a few
thousand images; run prepare first for big stores).

HTTP API (JSON):
    GET  /api/images?filter=all|unmarked|keep|reject|favourite&order=boring|interesting&offset=0&limit=200
    POST /api/mark  {"sha256": ..., "mark": "keep"|"reject"|"favourite"|"clear"}
    POST /api/undo  {"sha256": ..., "to": optional mark}   -> appends `to`, or Store.undo_mark's previous value
    GET  /img/{sha256}  the prepared PNG (or a thumbnail of the raw image)
"""

from __future__ import annotations

import io
import re
import sqlite3
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field

from sneakergan.collect.store import Store

STATIC_DIR = Path(__file__).with_name("curate_static")
FILTERS = ("all", "unmarked", "keep", "reject", "favourite")
SHA_PATTERN = r"^[0-9a-f]{64}$"
THUMB_SIDE = 256


@dataclass
class Item:
    sha256: str
    boring: float
    status: str


Mark = Literal["keep", "reject", "favourite", "clear"]  # the store's MARKS


class MarkRequest(BaseModel):
    sha256: str = Field(pattern=SHA_PATTERN)
    mark: Mark


class UndoRequest(BaseModel):
    sha256: str = Field(pattern=SHA_PATTERN)
    to: Mark | None = None


class Catalogue:
    """The images to curate: prepared rows if there are any, else the store's raw 'ok' images."""

    def __init__(self, store: Store):
        self.store = store
        self._raw_scores: dict[str, float] = {}  # fallback mode only: sha256 -> boringness, computed once

    def _prepared(self) -> list[Item]:
        # The prepared table belongs to prepare; Store has no reader for it, so read it directly (read-only).
        uri = f"file:{self.store.root / 'manifest.sqlite'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as conn:
            try:
                rows = conn.execute("SELECT sha256, boring, status FROM prepared").fetchall()
            except sqlite3.OperationalError:  # no table: a store from before prepare existed
                return []
        folder = self.store.root / "prepared"
        return [Item(sha, float(b) if b is not None else 0.5, status or "")
                for sha, b, status in rows if (folder / f"{sha}.png").exists()]

    def _raw(self) -> list[Item]:
        from sneakergan.prepare.boring import boringness, design_features

        items = []
        for row in self.store.iter_images("ok"):
            sha = row["sha256"]
            if sha not in self._raw_scores:
                try:
                    self._raw_scores[sha] = boringness(design_features(_thumbnail(self.store.object_path(sha))))
                except Exception:  # an unreadable object must not take the page down
                    self._raw_scores[sha] = 0.5
            items.append(Item(sha, self._raw_scores[sha], "raw"))
        return items

    def items(self) -> tuple[str, list[Item]]:
        """(source, items): source is 'prepared' or 'raw'."""
        prepared = self._prepared()
        if prepared:
            return "prepared", prepared
        return "raw", self._raw()

    def image_path(self, sha256: str) -> tuple[Path, bool]:
        """(file, is_prepared) for an image; KeyError if the store has no such image."""
        p = self.store.root / "prepared" / f"{sha256}.png"
        if p.exists():
            return p, True
        return self.store.object_path(sha256), False


def _thumbnail(path: Path, side: int = THUMB_SIDE) -> Image.Image:
    """A small RGB version of a stored image (JPEG draft mode decodes at reduced scale: fast for big photos)."""
    from sneakergan.prepare.boring import _to_rgb_on_white

    with Image.open(path) as img:
        img.draft("RGB", (side, side))
        img = _to_rgb_on_white(img)
        img.thumbnail((side, side), Image.LANCZOS)
        return img


def create_app(store_path: str | Path) -> FastAPI:
    """The curate app for the store at `store_path` (which must exist)."""
    store = Store.open(store_path, create=False)
    lock = threading.Lock()  # one SQLite connection shared by the worker threads
    catalogue = Catalogue(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        with lock:
            store.close()

    app = FastAPI(title="sneakergan curate", lifespan=lifespan)
    app.state.store = store
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def known(sha: str) -> bool:
        return (store.root / "prepared" / f"{sha}.png").exists() or (store.get(sha) or {}).get("status") == "ok"

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/images")
    def list_images(
        filter: Literal["all", "unmarked", "keep", "reject", "favourite"] = "all",  # noqa: A002 - query name
        order: Literal["boring", "interesting"] = "boring",
        offset: int = Query(0, ge=0),
        limit: int = Query(200, ge=1, le=5000),
    ) -> dict:
        with lock:
            source, items = catalogue.items()
            marks = store.latest_marks()
        counts = {f: 0 for f in FILTERS}
        counts["all"] = len(items)
        for it in items:
            counts[marks.get(it.sha256, "unmarked")] += 1
        if filter != "all":
            items = [it for it in items if marks.get(it.sha256, "unmarked") == filter]
        # Most boring first by default: that is where the filter's threshold needs a person's judgement.
        items.sort(key=lambda it: (-it.boring if order == "boring" else it.boring, it.sha256))
        page = items[offset: offset + limit]
        return {
            "source": source,
            "total": len(items),
            "counts": counts,
            "items": [{"sha256": it.sha256, "boring": round(it.boring, 4), "status": it.status,
                       "mark": marks.get(it.sha256), "url": f"/img/{it.sha256}"} for it in page],
        }

    @app.post("/api/mark")
    def mark(req: MarkRequest) -> dict:
        with lock:
            if not known(req.sha256):
                raise HTTPException(404, f"no image {req.sha256} in this store")
            store.add_mark(req.sha256, req.mark)
            current = store.latest_marks().get(req.sha256)
        return {"sha256": req.sha256, "mark": current}

    @app.post("/api/undo")
    def undo(req: UndoRequest) -> dict:
        with lock:
            if not known(req.sha256):
                raise HTTPException(404, f"no image {req.sha256} in this store")
            if req.to is not None:
                store.add_mark(req.sha256, req.to)
            else:
                store.undo_mark(req.sha256)
            current = store.latest_marks().get(req.sha256)
        return {"sha256": req.sha256, "mark": current}

    @app.get("/img/{sha256}")
    def image(sha256: str) -> Response:
        if not re.fullmatch(SHA_PATTERN, sha256):
            raise HTTPException(422, "not a sha256")
        try:
            with lock:
                path, prepared = catalogue.image_path(sha256)
        except KeyError:
            raise HTTPException(404, f"no image {sha256}") from None
        if prepared:
            return FileResponse(path, media_type="image/png")
        buf = io.BytesIO()
        _thumbnail(path).save(buf, format="JPEG", quality=90)
        return Response(buf.getvalue(), media_type="image/jpeg")

    return app
