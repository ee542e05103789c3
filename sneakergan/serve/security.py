"""The site's outer layer, as one ASGI middleware: security headers on every answer, HEAD wherever GET works, and
request bodies bounded while they stream.

- Headers: a Content-Security-Policy that allows only this origin (images also from blob:/data:, which the editor
  and Swagger UI use), `frame-ancestors 'none'`, nosniff, a same-origin referrer policy.
- HEAD: answered as the GET would be, without the body (Starlette's plain routes do this; FastAPI's do not).
- Bodies: a declared Content-Length over the limit is refused (413) before a byte is read; a body sent without
  one is counted as it arrives and the reader gets `BodyTooLarge` at the limit, so nothing is stored first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self' blob:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class BodyTooLarge(Exception):
    """The request body passed the limit while streaming."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit >> 20} MB" if limit >= 1 << 20
                         else f"the request body is larger than {limit >> 10} KB")
        self.limit = limit


@dataclass(frozen=True)
class BodyLimits:
    """Bytes a request body may have: `default` everywhere, more on the listed upload paths."""

    default: int = 64 << 10
    uploads: dict[str, int] = field(default_factory=dict)

    def for_path(self, path: str) -> int:
        return self.uploads.get(path, self.default)


class SiteMiddleware:
    """Security headers + HEAD + streaming body limits around an ASGI app."""

    def __init__(self, app: ASGIApp, limits: BodyLimits = BodyLimits()) -> None:
        self.app = app
        self.limits = limits
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope = dict(scope, method="GET")
        limit = self.limits.for_path(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, send, 413, str(BodyTooLarge(limit)), head)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=self._merge(message.get("headers", [])))
            elif message["type"] == "http.response.body" and head:
                message = dict(message, body=b"")
            await send(message)

        await self.app(scope, counted_receive, guarded_send)

    def _merge(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        have = {k.lower() for k, _ in headers}
        return list(headers) + [(k, v) for k, v in self.headers if k not in have]

    async def _refuse(self, scope: Scope, send: Callable[[Message], Awaitable[None]], status: int, message: str,
                      head: bool) -> None:
        body = json.dumps({"error": message}).encode()
        headers = self._merge([(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                               (b"connection", b"close")])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None
