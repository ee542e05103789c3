"""Photo projection: upload a photo, poll the job, open the result in the editor.

The order of work is what keeps the server standing under hostile uploads: a job slot first (503 when none is
free, before a byte of the body is read), then the body, streamed into memory with a byte limit, then the format
and size checks from the file's header, then the decode (bounded, in a thread), then the job.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path as PathParam, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..site import SiteDep
from ..uploads import open_photo, read_multipart_file

router = APIRouter(tags=["projection"])
UPLOAD_PATH = "/api/project"

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "A photo: PNG, JPEG or WebP, at most 10 MB and 25 megapixels, "
                                           "at least 32 px on each side."}}}}}}}


@router.post(UPLOAD_PATH, status_code=202, openapi_extra=UPLOAD_BODY)
async def project(request: Request, site: SiteDep) -> dict[str, Any]:
    """Start projecting a photo into the model; poll /api/project/{job} for progress and the result state."""
    limits = site.config.upload
    slot = site.jobs.reserve()
    try:
        data = await read_multipart_file(request.headers.get("content-type"), request.stream(), limits.max_bytes)
        image = await asyncio.to_thread(open_photo, data, limits)
        del data
        job = site.jobs.submit(image, total=site.engine.config.project_steps, slot=slot)
    finally:
        slot.release()  # a no-op once the job took the slot
    return {"job": job.id, "status": job.status, "poll": f"/api/project/{job.id}",
            "steps": job.total}


@router.get("/api/project/{job}")
async def project_status(site: SiteDep, job: Annotated[str, PathParam(max_length=64)]) -> dict[str, Any]:
    """Progress of a projection job; when done, `result.state` is the token to open in the editor."""
    j = site.jobs.get(job)
    if j is None:
        raise StarletteHTTPException(404, f"no projection job {job[:64]!r} (finished jobs are kept a while)")
    return j.to_json()
