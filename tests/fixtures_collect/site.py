"""A fixture webshop and a fake Wayback Machine (CDX API + id_ snapshots) served on 127.0.0.1.

Every request is logged (path, status, time) so tests can assert what was and was not fetched.
`gate_image_n` makes the n-th image request hang until `release()`, so a test can kill a crawl at a
known point; `flaky` paths answer 503 the first time.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

from . import images as fx

ROBOTS = "User-agent: *\nDisallow: /private/\n"
PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAAAAACw="


def _noise_jpeg(side: int, seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def shop_images() -> dict[str, bytes]:
    """Every image path of the shop and its bytes."""
    p2 = fx.jpeg(140, 100, seed=2)
    return {
        "/img/p1-small.jpg": fx.jpeg(100, 80, seed=10),
        "/img/p1-large.jpg": fx.jpeg(320, 240, seed=11),
        "/img/shared.jpg": fx.jpeg(200, 200, seed=12),
        "/img/p2.jpg": p2,
        "/img/p2-copy.jpg": p2,  # the same bytes under a second URL
        "/img/corrupt.jpg": fx.truncated(fx.jpeg(300, 300, seed=13)),
        "/img/not-image.jpg": b"<html><body>Sorry, this image has moved</body></html>",
        "/img/huge.jpg": _noise_jpeg(700, 14),  # over the test's --max-bytes
        "/img/bomb.png": fx.bomb_png(10_000),  # 100 MP in a few kB
        "/img/cmyk.jpg": fx.jpeg(120, 120, seed=15, mode="CMYK"),
        "/img/palette.png": fx.png(120, 120, seed=16, mode="P"),
        "/img/grey16.png": fx.png(120, 120, seed=17, mode="I;16"),
        "/img/anim.gif": fx.animated_gif(),
        "/img/p6.jpg": fx.jpeg(180, 120, seed=18),
        "/img/p6-wide.jpg": fx.jpeg(400, 200, seed=19),
        "/img/flaky.jpg": fx.jpeg(150, 150, seed=20),
        "/private/img/secret.jpg": fx.jpeg(150, 150, seed=21),
    }


def _page(title: str, body: str, head: str = "") -> str:
    return f"<!doctype html><html><head><title>{title}</title>{head}</head><body>{body}</body></html>"


def _ld(obj: dict) -> str:
    return f'<script type="application/ld+json">{json.dumps(obj)}</script>'


def shop_pages() -> dict[str, str]:
    """path (with query) -> HTML."""
    card = '<div class="product-grid">{}</div>'
    pages = {
        "/catalog": _page("Catalog", card.format(
            '<a href="/product/1">One</a><a href="/product/2">Two</a><a href="/product/3">Three</a>'
            '<a href="/private/product/9">Secret</a><a href="/product/404">Gone</a>')
            + '<nav class="pagination"><a class="next" href="/catalog?page=2">next</a></nav>'
            + '<a href="/cart">cart</a>'),
        "/catalog?page=2": _page("Catalog 2", card.format(
            '<a href="/product/4">Four</a><a href="/product/5">Five</a><a href="/product/6">Six</a>')
            + '<nav class="pagination"><a href="/catalog">prev</a></nav>'),
        "/product/1": _page("Runner One | Shop", (
            '<h1>Runner One</h1><div class="gallery">'
            '<img src="/img/p1-small.jpg" srcset="/img/p1-small.jpg 200w, /img/p1-large.jpg 800w"></div>'),
            head=_ld({"@context": "https://schema.org", "@type": "Product", "name": "Runner One",
                      "brand": {"@type": "Brand", "name": "Acme"}, "image": ["/img/shared.jpg"],
                      "offers": {"@type": "Offer", "price": "89.95", "priceCurrency": "EUR"}})),
        "/product/2": _page("Court Two", (
            '<h1>Court Two</h1><span class="brand">Bolt</span><span class="price">120</span>'
            f'<div class="gallery"><img class="lazy" src="{PLACEHOLDER}" data-src="/img/p2.jpg">'
            f'<img class="lazy" src="{PLACEHOLDER}" data-src="/img/p2-copy.jpg"></div>'),
            head='<meta property="og:image" content="/img/shared.jpg">'),
        "/product/3": _page("Broken Three", (
            '<h1>Broken Three</h1><div class="gallery"><img src="/img/corrupt.jpg">'
            '<img src="/img/not-image.jpg"></div>')),
        "/product/4": _page("Big Four", '<h1>Big Four</h1><div class="gallery"><img src="/img/huge.jpg">'
                                        '<img src="/img/bomb.png"></div>'),
        "/product/5": _page("Odd Five", (
            '<h1>Odd Five</h1><div class="gallery"><img src="/img/cmyk.jpg"><img src="/img/palette.png">'
            '<img src="/img/grey16.png"><img src="/img/anim.gif"><img src="/img/missing.jpg"></div>')),
        "/product/6": _page("Six", (
            '<h1>Six</h1><div class="gallery"><picture><source srcset="/img/p6.jpg 1x, /img/p6-wide.jpg 2x">'
            '<img src="/img/p6.jpg"></picture><img data-srcset="/img/flaky.jpg 600w"></div>'),
            head=_ld({"@context": "https://schema.org", "@graph": [
                {"@type": "WebPage", "name": "Six"},
                {"@type": "Product", "name": "Six Hi", "brand": "Acme", "offers": [{"price": 75}]}]})),
        "/private/product/9": _page("Secret", '<div class="gallery"><img src="/private/img/secret.jpg"></div>'),
    }
    return pages


# -- the archive ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Capture:
    timestamp: str
    original: str
    mimetype: str
    status: str
    body: bytes = b""


def archive() -> list[Capture]:
    """Captures of oldshop.test, in CDX order (urlkey, then timestamp)."""
    a_jpg = fx.jpeg(220, 160, seed=30)
    page_a = _page("Old A", '<h1>Old A</h1><img src="/img/a.jpg"><img src="http://oldshop.test/img/logo.png">')
    page_b = _page("Old B", '<h1>Old B</h1><img src="../img/a.jpg"><img src="/img/b.png">')
    return [
        Capture("20111231000000", "http://oldshop.test/img/a.jpg", "image/jpeg", "200", a_jpg),
        Capture("20120210000000", "http://oldshop.test/img/b.png", "image/png", "200", fx.png(160, 160, seed=31)),
        Capture("20120101000000", "http://oldshop.test/img/logo.png", "image/png", "200", fx.png(40, 20, seed=32)),
        Capture("20120101000000", "http://oldshop.test/shoes/a.html", "text/html", "200", page_a.encode()),
        Capture("20130101000000", "http://oldshop.test/shoes/a.html", "text/html", "200", page_a.encode()),
        Capture("20120305000000", "http://oldshop.test/shoes/b.html", "text/html", "200", page_b.encode()),
        Capture("20150101000000", "http://oldshop.test/shoes/c.html", "text/html", "200", page_a.encode()),
        Capture("20120401000000", "http://oldshop.test/shoes/gone.html", "text/html", "404", b"not found"),
    ]


def _urlkey(url: str) -> str:
    return re.sub(r"^https?://(www\.)?", "", url).lower()


def cdx_answer(captures: list[Capture], qs: dict[str, list[str]]) -> list[list[str]]:
    """Enough of the CDX server: url+matchType, from/to, filter (field:regex), collapse=urlkey,
    limit + showResumeKey/resumeKey (the key is an offset here)."""
    target = qs["url"][0]
    rows = [c for c in captures if _urlkey(c.original).startswith(_urlkey("http://" + target))]
    for f in qs.get("filter", []):
        field, rx = f.split(":", 1)
        attr = {"statuscode": "status", "mimetype": "mimetype", "original": "original"}[field]
        rows = [c for c in rows if re.fullmatch(rx, getattr(c, attr))]
    if "from" in qs:
        rows = [c for c in rows if c.timestamp[: len(qs["from"][0])] >= qs["from"][0]]
    if "to" in qs:
        rows = [c for c in rows if c.timestamp[: len(qs["to"][0])] <= qs["to"][0]]
    if qs.get("collapse") == ["urlkey"]:
        seen, kept = set(), []
        for c in rows:
            if _urlkey(c.original) not in seen:
                seen.add(_urlkey(c.original))
                kept.append(c)
        rows = kept
    start = int(qs.get("resumeKey", ["0"])[0])
    limit = int(qs.get("limit", ["100000"])[0])
    page = rows[start:start + limit]
    fields = qs["fl"][0].split(",")
    out = [fields]
    for c in page:
        values = {"urlkey": _urlkey(c.original), "timestamp": c.timestamp, "original": c.original,
                  "mimetype": c.mimetype, "statuscode": c.status, "digest": "D" + c.timestamp, "length": "1"}
        out.append([values[f] for f in fields])
    if qs.get("showResumeKey") == ["true"] and start + limit < len(rows):
        out += [[], [str(start + limit)]]
    return out


class FixtureSite:
    """The server; use as a context manager. `base` is http://127.0.0.1:PORT."""

    def __init__(self) -> None:
        self.pages = shop_pages()
        self.images = shop_images()
        self.captures = archive()
        self.log: list[tuple[str, int, float]] = []
        self.cdx_queries: list[dict[str, list[str]]] = []
        self.user_agents: set[str] = set()
        self.flaky = {"/img/flaky.jpg"}
        self._flaky_hits: set[str] = set()
        self.gate_image_n: int | None = None
        self.gated_path: str | None = None
        self._gate = threading.Event()
        self._image_requests = 0
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                site._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FixtureSite":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        """Forget the request log and flaky state (a fresh crawl)."""
        with self._lock:
            self.log.clear()
            self.cdx_queries.clear()
            self.user_agents.clear()
            self._flaky_hits.clear()
            self._image_requests = 0

    def arm_gate(self, n: int) -> None:
        self.gate_image_n, self.gated_path = n, None
        self._gate.clear()

    def release(self) -> None:
        self.gate_image_n = None
        self._gate.set()

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.log]

    # -- routing ---------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        path = split.path + (f"?{split.query}" if split.query else "")
        status, ctype, body, headers = self._route(split.path, path, split.query)
        with self._lock:
            self.log.append((path, status, time.monotonic()))
            self.user_agents.add(h.headers.get("User-Agent", ""))
            gated = False
            if split.path.startswith(("/img/", "/private/img/")):
                self._image_requests += 1
                if self.gate_image_n is not None and self._image_requests == self.gate_image_n:
                    gated, self.gated_path = True, path
        if gated:
            self._gate.wait(30)
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the crawler was killed while we waited

    def _route(self, bare: str, path: str, query: str):
        html = "text/html; charset=utf-8"
        if bare == "/robots.txt":
            return 200, "text/plain", ROBOTS.encode(), {}
        if bare == "/cdx/search/cdx":
            qs = parse_qs(query)
            self.cdx_queries.append(qs)
            return 200, "application/json", json.dumps(cdx_answer(self.captures, qs)).encode(), {}
        m = re.match(r"^/web/(\d{14})id_/(.+)$", path)
        if m:
            return self._snapshot(m.group(1), m.group(2))
        if path in self.pages:
            return 200, html, self.pages[path].encode(), {}
        if bare in self.images:
            if bare in self.flaky and bare not in self._flaky_hits:
                self._flaky_hits.add(bare)
                return 503, "text/plain", b"busy", {}
            ext = bare.rsplit(".", 1)[-1]
            return 200, f"image/{'jpeg' if ext == 'jpg' else ext}", self.images[bare], {}
        return 404, html, _page("Not found", "<h1>404</h1>").encode(), {}

    def _snapshot(self, ts: str, original: str):
        """Like the real Wayback: the exact capture, else a redirect to the nearest one."""
        caps = [c for c in self.captures if c.original == original and c.status == "200"]
        if not caps:
            return 404, "text/plain", b"not archived", {}
        exact = [c for c in caps if c.timestamp == ts]
        if exact:
            return 200, exact[0].mimetype, exact[0].body, {}
        nearest = min(caps, key=lambda c: abs(int(c.timestamp) - int(ts)))
        return 302, "text/plain", b"", {"Location": f"/web/{nearest.timestamp}id_/{original}"}
