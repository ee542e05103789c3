"""Settings of a crawl (politeness, limits) and the YAML source file that describes one webshop."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sneakergan.collect.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE
from sneakergan.errors import UserError

DEFAULT_USER_AGENT = "sneakergan-collect/0.1 (+https://github.com/sneakergan/sneakergan; research image dataset)"


class SourceError(UserError):
    """A source file or crawl option that cannot work; the message is one line for the user."""


@dataclass(frozen=True)
class CrawlConfig:
    """How politely and how far a crawl goes. Maps one-to-one onto Scrapy settings in `crawl.py`."""

    user_agent: str = DEFAULT_USER_AGENT
    delay: float = 1.0  # seconds between requests to one domain (AutoThrottle's floor)
    autothrottle: bool = True
    concurrency: int = 8  # all domains together
    concurrency_per_domain: int = 2
    retries: int = 3  # on 429, 5xx and network errors
    backoff_base: float = 2.0  # seconds; doubles with each retry, Retry-After wins when the server sends it
    backoff_max: float = 120.0
    timeout: float = 30.0
    obey_robots: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES  # per image; larger downloads are cancelled mid-stream
    max_page_bytes: int = 10 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    max_pages: int = 0  # 0: no limit
    log_level: str = "WARNING"
    progress: bool = True


@dataclass(frozen=True)
class LinkRule:
    """Which links to follow: URL regexes (allow/deny) and page regions (CSS/XPath) to look in."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    css: tuple[str, ...] = ()
    xpath: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.allow or self.css or self.xpath)


@dataclass(frozen=True)
class ImageRule:
    """Where a product page keeps its photos.

    `css`/`xpath` select elements (img, source, or anything carrying data-src/srcset); the best URL of each
    is taken from data-srcset/srcset (largest), then data-src and friends, then src."""

    css: tuple[str, ...] = ()
    xpath: tuple[str, ...] = ()
    og_image: bool = True
    json_ld: bool = True
    allow: tuple[str, ...] = ()  # image URL regexes to keep (empty: all)
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShopSource:
    """One webshop, as described by a YAML source file (see examples/sources/)."""

    name: str
    start_urls: tuple[str, ...]
    allowed_domains: tuple[str, ...] = ()
    product_pages: LinkRule = field(default_factory=LinkRule)
    pagination: LinkRule = field(default_factory=LinkRule)
    follow: LinkRule = field(default_factory=LinkRule)
    deny: tuple[str, ...] = ()  # URL regexes never requested (cart, login, ...)
    images: ImageRule = field(default_factory=ImageRule)
    fields: dict[str, str] = field(default_factory=dict)  # title/brand/price -> CSS or XPath (starts with /)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SourceError(f"{where} must be a string or a list of strings")


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise SourceError(f"{where} must be a mapping")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise SourceError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(names)})")
    kwargs = {}
    for k, v in data.items():
        if names[k].type in ("bool",):
            if not isinstance(v, bool):
                raise SourceError(f"{where}.{k} must be true or false")
            kwargs[k] = v
        else:
            kwargs[k] = _strings(v, f"{where}.{k}")
    return cls(**kwargs)


def parse_source(data: Any, default_name: str = "shop") -> ShopSource:
    """Validate a parsed YAML mapping into a ShopSource; raises SourceError with a one-line message."""
    if not isinstance(data, dict):
        raise SourceError("a source file must be a YAML mapping")
    known = {f.name for f in dataclasses.fields(ShopSource)}
    unknown = set(data) - known
    if unknown:
        raise SourceError(f"unknown keys {sorted(unknown)} (known: {sorted(known)})")
    start = _strings(data.get("start_urls"), "start_urls")
    if not start:
        raise SourceError("start_urls is required")
    for u in start:
        if not u.startswith(("http://", "https://")):
            raise SourceError(f"start URL {u!r} is not http(s)")
    fields_ = data.get("fields") or {}
    if not isinstance(fields_, dict) or not set(fields_) <= {"title", "brand", "price"}:
        raise SourceError("fields may only set title, brand and price selectors")
    name = str(data.get("name") or default_name)
    return ShopSource(
        name=name,
        start_urls=start,
        allowed_domains=_strings(data.get("allowed_domains"), "allowed_domains"),
        product_pages=_build(LinkRule, data.get("product_pages"), "product_pages"),
        pagination=_build(LinkRule, data.get("pagination"), "pagination"),
        follow=_build(LinkRule, data.get("follow"), "follow"),
        deny=_strings(data.get("deny"), "deny"),
        images=_build(ImageRule, data.get("images"), "images"),
        fields={k: str(v) for k, v in fields_.items()},
    )


def load_source(path: str | Path) -> ShopSource:
    """Read and validate a YAML source file."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"source file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SourceError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
    return parse_source(data, default_name=p.stem)
