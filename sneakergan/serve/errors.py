"""Errors as answers: JSON `{"error": ...}` for the API, a page in a visitor's words for people, never a traceback.

API clients get the precise reason (which parameter, which limit). A person who followed a cut-off link gets a
page that says what happened in plain words and what to do next; the internal wording stays out of it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..edit.state import EditStateError
from .engine import BadInput, WrongModel
from .pool import Overloaded
from .security import BodyTooLarge
from .site import ClientGone
from .uploads import UploadRefused

# What a visitor reads, by status; a page adds the specific sentence when there is a safe one.
PAGE_WORDS = {
    400: ("This link doesn't work", "Part of the address is missing or mistyped. If someone sent it to you, "
                                    "it may have been cut short when it was copied."),
    404: ("Nothing here", "There is no page at this address."),
    405: ("Not here", "This page can't be used that way."),
    413: ("Too big", "That file is too large for this site."),
    422: ("This link doesn't work", "Part of the address is missing or mistyped. Sneaker numbers (seeds) are whole "
                                    "numbers from 0 to 4,294,967,295."),
    499: ("Gone", "The request was cancelled."),
    503: ("Busy right now", "Lots of people are making sneakers at the moment. Try again in a few seconds."),
    500: ("Something went wrong", "That's our fault, not yours. Try again, or start from a new sneaker."),
}
DESIGN_LINK = ("This design link doesn't work", "The link is incomplete or damaged, often because it was cut short "
               "when it was copied. Ask for the link again, or start from a new sneaker.")
OTHER_MODEL = ("Made with another model", "This design was made with a different sneaker model than the one this "
               "site runs now, so it can't be shown. Start from a new sneaker instead.")


def install(app: FastAPI) -> None:
    """Register the handlers."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"nothing at {request.url.path[:200]}"
        return answer(request, exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return answer(request, 422, describe_validation(exc))

    @app.exception_handler(EditStateError)
    async def state_error(request: Request, exc: EditStateError) -> Response:
        words = OTHER_MODEL if isinstance(exc, WrongModel) else DESIGN_LINK
        return answer(request, 400, f"invalid edit state: {exc}", page=words)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> Response:
        return answer(request, 400, str(exc))

    @app.exception_handler(UploadRefused)
    async def upload_refused(request: Request, exc: UploadRefused) -> Response:
        return answer(request, exc.status, str(exc))

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> Response:
        return answer(request, 413, str(exc), headers={"Connection": "close"})

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> Response:
        return answer(request, 503, str(exc), headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, exc: ClientGone) -> Response:
        return Response(status_code=499)  # nobody is listening; nginx's "client closed request"

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:  # a bug: say so plainly, no stack trace
        return answer(request, 500, "internal error while handling the request")


def answer(request: Request, status: int, message: str, headers: dict[str, str] | None = None,
           page: tuple[str, str] | None = None) -> Response:
    """JSON for /api/ and /openapi.json, else the error page."""
    if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    title, text = page or PAGE_WORDS.get(status, PAGE_WORDS[500 if status >= 500 else 400])
    site = request.app.state.site
    return site.templates.TemplateResponse(request, "error.html", site.page_context(
        "error", status=status, title=title, text=text), status_code=status, headers=headers)


def describe_validation(exc: RequestValidationError) -> str:
    """One line naming the first few bad parameters."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("path", "query", "body"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
