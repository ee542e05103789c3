"""/docs: Swagger UI served from this server (assets from the pinned `fastapi-offline` package), so the API page
works with no network and under the site's CSP (the initialiser is a file, not an inline script)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ..site import SiteDep

router = APIRouter(include_in_schema=False)
ASSETS_URL = "/docs-assets"


def swagger_assets() -> Path | None:
    """The folder with swagger-ui-bundle.js and swagger-ui.css, or None when the package is missing."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def mount_assets(app: FastAPI) -> None:
    folder = swagger_assets()
    if folder is not None:
        app.mount(ASSETS_URL, StaticFiles(directory=str(folder)), name="docs-assets")


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request, site: SiteDep) -> HTMLResponse:
    return site.templates.TemplateResponse(request, "docs.html", site.page_context(
        "docs", swagger=swagger_assets() is not None, assets=ASSETS_URL))
