"""Spiders: a webshop, the Wayback Machine, and a plain list of image URLs.

Resuming. Scrapy's JOBDIR only survives a graceful stop (its request queue's state is written on close,
while its seen-set is appended as it goes), so after a SIGKILL it would drop pending pages. These spiders
keep their own crawl state in the manifest instead, committed as they go:
  * each fetched page's result (links to follow, images with their provenance) in `pages`, per job;
  * each image URL's bytes in `images`/`sources`, and each URL that gave nothing in `failures`.
A restarted job walks the recorded pages from the start URLs without fetching them again, asks only for
images the store lacks, and links known images to any page that was not yet linked. So a kill costs at
most the requests that were in flight.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import scrapy
from parsel import Selector
from scrapy.exceptions import IgnoreRequest
from scrapy.http import TextResponse
from scrapy.linkextractors import LinkExtractor
from scrapy.spidermiddlewares.httperror import HttpError

from sneakergan.collect import extract, wayback
from sneakergan.collect.config import CrawlConfig, ImageRule, LinkRule, ShopSource
from sneakergan.collect.items import ImageItem, SourceItem
from sneakergan.collect.store import Store

IMAGE_PRIORITY = 10  # finish a product's images before opening more pages: progress is real early on


def failure_status(exc: BaseException) -> tuple[str, str]:
    """(status code, human reason) for a failed request."""
    if isinstance(exc, HttpError):
        code = exc.response.status
        return f"http_{code}", f"HTTP {code}"
    if isinstance(exc, IgnoreRequest):
        msg = str(exc) or "request ignored"
        return ("robots_disallowed" if "robots" in msg.lower() else "ignored"), msg
    msg = f"{type(exc).__name__}: {exc}"
    if "maxsize" in msg.lower() or "max size" in msg.lower() or type(exc).__name__ == "DownloadCancelledError":
        return "too_large_bytes", msg.splitlines()[0][:300]
    return "network_error", msg.splitlines()[0][:300]


def is_permanent(status: str) -> bool:
    """Failures worth remembering forever; network errors, 408, 429 and 5xx are tried again next run."""
    if status == "network_error":
        return False
    if status.startswith("http_"):
        code = int(status[5:])
        return 400 <= code < 500 and code not in (408, 429)
    return True


class StoreSpider(scrapy.Spider):
    """Shared machinery: recorded pages, image requests, failures. Subclasses define `initial()` and
    `parse_<parser>(response, meta) -> {"links": [...], "images": [...]}` (JSON-able)."""

    kind = "shop"

    def __init__(self, store_path: str, job: str, config: CrawlConfig | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.cfg = config or CrawlConfig()
        self.store = Store.open(store_path)
        self.job = job
        self._pending: dict[str, list[dict[str, Any]]] = {}  # image URL in flight -> places it was found
        self._visited: set[str] = set()
        self._page_requests = 0

    def closed(self, reason: str) -> None:
        self.store.close()

    # -- subclass interface ------------------------------------------------------------------------
    def initial(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(url, parser name, meta) of the first pages."""
        raise NotImplementedError

    def initial_images(self) -> list[dict[str, Any]]:
        """Images requested before any page (URL lists)."""
        return []

    # -- engine entry points -----------------------------------------------------------------------
    async def start(self):  # Scrapy >= 2.13
        for r in self._start_iter():
            yield r

    def start_requests(self):  # older Scrapy
        yield from self._start_iter()

    def _start_iter(self) -> Iterator[Any]:
        for img in self.initial_images():
            yield from self._want_image(img)
        for url, parser, meta in self.initial():
            yield from self._visit(url, parser, meta)

    def _visit(self, url: str, parser: str, meta: dict[str, Any]) -> Iterator[Any]:
        """Request a page, or replay its recorded result when this job already fetched it."""
        stack = [(url, parser, meta)]
        while stack:
            url, parser, meta = stack.pop()
            if url in self._visited:
                continue
            self._visited.add(url)
            recorded = self.store.page(self.job, url)
            if recorded is not None:
                self.crawler.stats.inc_value("collect/pages_recorded")
                stack.extend((l["url"], l["parser"], l.get("meta") or {}) for l in reversed(recorded["links"]))
                for img in recorded["images"]:
                    yield from self._want_image(img)
                continue
            fail = self.store.failure(url)
            if fail and is_permanent(fail["status"]):
                continue
            if self.cfg.max_pages and self._page_requests >= self.cfg.max_pages:
                continue
            self._page_requests += 1
            yield scrapy.Request(url, callback=self._on_page, errback=self._on_error,
                                 cb_kwargs={"parser": parser, "meta": meta},
                                 meta={"sg_url": url, "sg_kind": "page",
                                       "download_maxsize": self.cfg.max_page_bytes})

    def _want_image(self, img: dict[str, Any]) -> Iterator[Any]:
        """Ask for an image unless its bytes are known (then only link the new place) or it failed for good."""
        url, source = img["url"], {**img["source"], "image_url": img["url"]}
        if url in self._pending:
            self._pending[url].append(source)
            return
        sha = self.store.sha_for_image_url(url)
        if sha is not None:
            yield SourceItem(sha, source)
            return
        fail = self.store.failure(url)
        if fail and is_permanent(fail["status"]):
            return
        self._pending[url] = [source]
        yield scrapy.Request(url, callback=self._on_image, errback=self._on_error, priority=IMAGE_PRIORITY,
                             dont_filter=True,  # an image seen on many pages is fetched once, via _pending
                             meta={"sg_url": url, "sg_kind": "image", "download_maxsize": self.cfg.max_bytes,
                                   "allow_offsite": True})  # shops serve photos from CDN hosts

    # -- callbacks -----------------------------------------------------------------------------------
    def _on_page(self, response: Any, parser: str, meta: dict[str, Any]) -> Iterator[Any]:
        url = response.meta["sg_url"]
        self.crawler.stats.inc_value("collect/pages")
        try:
            if not isinstance(response, TextResponse):
                result = {"links": [], "images": []}
            else:
                result = getattr(self, f"parse_{parser}")(response, meta)
        except Exception as e:  # a hostile page must not stop the crawl
            self.logger.warning("could not read %s: %s", url, e)
            self.store.record_failure(url, self.kind, "parse_error", f"{type(e).__name__}: {e}")
            self.crawler.stats.inc_value("collect/errors")
            return
        self.store.record_page(self.job, url, self.kind, result)  # before anything else: resume point
        for link in result["links"]:
            yield from self._visit(link["url"], link["parser"], link.get("meta") or {})
        for img in result["images"]:
            yield from self._want_image(img)

    def _on_image(self, response: Any) -> Iterator[Any]:
        url = response.meta["sg_url"]
        yield ImageItem(url=url, data=response.body, sources=self._pending.pop(url, []))

    def _on_error(self, failure: Any) -> None:
        request = failure.request
        url, what = request.meta.get("sg_url", request.url), request.meta.get("sg_kind", "page")
        status, reason = failure_status(failure.value)
        if what == "page" and status == "too_large_bytes":
            status = "page_too_large"
        sources = self._pending.pop(url, []) if what == "image" else []
        page_url = sources[0].get("page_url") if sources else None
        self.store.record_failure(url, self.kind, status, reason, page_url=page_url)
        if not self.crawler.stats.get_value("collect/first_failure"):  # the reason a failed crawl reports
            self.crawler.stats.set_value("collect/first_failure", f"{url}: {reason}")
        self.crawler.stats.inc_value("collect/errors")
        self.crawler.stats.inc_value(f"collect/failures/{status}")


def _links(response: Any, rule: LinkRule, deny: tuple[str, ...]) -> list[str]:
    # Domains are left to Scrapy's offsite middleware, which (unlike LinkExtractor) ignores ports.
    if rule.empty:
        return []
    ex = LinkExtractor(allow=rule.allow, deny=rule.deny + deny, restrict_css=rule.css,
                       restrict_xpaths=rule.xpath, unique=True)
    return [link.url for link in ex.extract_links(response)]


class ShopSpider(StoreSpider):
    """Crawls one webshop described by a ShopSource: listing pages -> product pages -> photos."""

    name = "shop"
    kind = "shop"

    def __init__(self, source: ShopSource, **kwargs: Any):
        super().__init__(**kwargs)
        self.source = source
        self.allowed_domains = list(source.allowed_domains)
        self._product_re = [re.compile(a) for a in source.product_pages.allow]

    def initial(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(u, "listing", {}) for u in self.source.start_urls]

    def parse_listing(self, response: Any, meta: dict[str, Any]) -> dict[str, Any]:
        s = self.source
        links = [{"url": u, "parser": "product"}
                 for u in _links(response, s.product_pages, s.deny)]
        for rule in (s.pagination, s.follow):
            links += [{"url": u, "parser": "listing"} for u in _links(response, rule, s.deny)]
        # A start URL may itself be a product page (or a listing carrying a Product in JSON-LD).
        images = []
        if any(p.search(response.url) for p in self._product_re) or extract.json_ld_products(response.selector):
            images = self.parse_product(response, meta)["images"]
        return {"links": links, "images": images}

    def parse_product(self, response: Any, meta: dict[str, Any]) -> dict[str, Any]:
        sel = response.selector
        facts = extract.product_facts(sel, self.source.fields)
        extra = {"shop": self.source.name}
        if facts.get("currency"):
            extra["currency"] = facts["currency"]
        src = {"kind": "shop", "page_url": response.url, "title": facts["title"], "brand": facts["brand"],
               "price": facts["price"], "extra": extra}
        urls = extract.image_urls(sel, response.url, self.source.images)
        return {"links": [], "images": [{"url": u, "source": src} for u in urls]}


class WaybackSpider(StoreSpider):
    """Archived product pages (or images) of a domain from the Wayback Machine's CDX index."""

    name = "wayback"
    kind = "wayback"

    def __init__(self, target: str, date_from: str | None = None, date_to: str | None = None,
                 cdx_url: str = wayback.DEFAULT_CDX_URL, wayback_url: str = wayback.DEFAULT_WAYBACK_URL,
                 match: str | None = None, images_only: bool = False, page_limit: int = 1000,
                 image_rule: ImageRule | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.target, self.date_from, self.date_to = target, date_from, date_to
        self.cdx_url, self.wayback_url, self.match = cdx_url, wayback_url, match
        self.images_only, self.page_limit = images_only, page_limit
        self.image_rule = image_rule or ImageRule(css=("img",))

    def _query(self, resume_key: str | None = None) -> str:
        mime = r"image/(jpeg|png|webp|gif)" if self.images_only else "text/html"
        return wayback.cdx_query_url(self.cdx_url, self.target, self.date_from, self.date_to, mimetype=mime,
                                     match=self.match, limit=self.page_limit, resume_key=resume_key)

    def initial(self) -> list[tuple[str, str, dict[str, Any]]]:
        return [(self._query(), "cdx", {})]

    def parse_cdx(self, response: Any, meta: dict[str, Any]) -> dict[str, Any]:
        captures, resume = wayback.parse_cdx(response.text)
        links, images = [], []
        for c in captures:
            url = wayback.snapshot_url(self.wayback_url, c.timestamp, c.original)
            if self.images_only:
                images.append({"url": url, "source": {
                    "kind": "wayback", "snapshot_time": c.timestamp,
                    "extra": {"original_image_url": c.original, "digest": c.digest}}})
            else:
                links.append({"url": url, "parser": "snapshot",
                              "meta": {"timestamp": c.timestamp, "original": c.original}})
        if resume:
            links.append({"url": self._query(resume), "parser": "cdx"})
        return {"links": links, "images": images}

    def parse_snapshot(self, response: Any, meta: dict[str, Any]) -> dict[str, Any]:
        ts, original = meta["timestamp"], meta["original"]
        # id_ serves the page as captured: its relative links resolve against the original URL.
        sel = Selector(text=response.text)
        facts = extract.product_facts(sel)
        images = []
        for u in extract.image_urls(sel, original, self.image_rule):
            images.append({"url": wayback.snapshot_url(self.wayback_url, ts, u), "source": {
                "kind": "wayback", "page_url": original, "snapshot_time": ts, "title": facts["title"],
                "brand": facts["brand"], "price": facts["price"],
                "extra": {"original_image_url": u,
                          "page_snapshot": wayback.snapshot_url(self.wayback_url, ts, original, raw=False)}}})
        return {"links": [], "images": images}


class UrlListSpider(StoreSpider):
    """Fetches a list of image URLs (each entry: url plus optional page_url/title/brand/price)."""

    name = "urls"
    kind = "urls"

    def __init__(self, entries: list[dict[str, Any]], **kwargs: Any):
        super().__init__(**kwargs)
        self.entries = entries

    def initial(self) -> list[tuple[str, str, dict[str, Any]]]:
        return []

    def initial_images(self) -> list[dict[str, Any]]:
        out = []
        for e in self.entries:
            src = {k: e.get(k) for k in ("page_url", "title", "brand", "price", "caption") if e.get(k)}
            out.append({"url": e["url"], "source": {"kind": "urls", **src}})
        return out
