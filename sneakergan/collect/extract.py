"""Pure functions that read a product page: image URLs (srcset, lazy loading, og:image, JSON-LD) and
product facts (title, brand, price). No network, no Scrapy engine: easy to test on a string."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin

from parsel import Selector

from sneakergan.collect.config import ImageRule

# Lazy-loading libraries put the real URL in one of these; `src` then holds a placeholder.
LAZY_SRCSET_ATTRS = ("data-srcset", "data-lazy-srcset", "srcset")
LAZY_SRC_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-zoom-image", "data-large", "src")

_DESCRIPTOR = re.compile(r"^\s*(\d+(?:\.\d+)?)([wxh])\s*$")


def parse_srcset(value: str) -> list[tuple[str, float]]:
    """`"a.jpg 480w, b.jpg 1080w"` -> [("a.jpg", 480), ("b.jpg", 1080)]; `x` densities count as 1000*x."""
    out = []
    # Candidates are separated by commas that follow a descriptor or a URL; URLs rarely hold ", ".
    for part in re.split(r",\s+|,(?=\S+\s+\d)", value.strip()):
        bits = part.strip().split()
        if not bits:
            continue
        url, weight = bits[0].rstrip(","), 1.0
        if len(bits) > 1:
            m = _DESCRIPTOR.match(bits[1])
            if m:
                weight = float(m.group(1)) * (1000.0 if m.group(2) == "x" else 1.0)
        out.append((url, weight))
    return out


def best_from_srcset(value: str) -> str | None:
    """The largest candidate of a srcset, or None."""
    cands = parse_srcset(value)
    return max(cands, key=lambda c: c[1])[0] if cands else None


def _usable(url: str | None) -> bool:
    return bool(url) and not url.strip().startswith(("data:", "javascript:", "about:", "#"))


def element_image_url(el: Selector) -> str | None:
    """The best image URL an element offers: the largest srcset entry, else a lazy-loading attribute, else src."""
    for attr in LAZY_SRCSET_ATTRS:
        v = el.attrib.get(attr)
        if v:
            best = best_from_srcset(v)
            if _usable(best):
                return best
    for attr in LAZY_SRC_ATTRS:
        v = el.attrib.get(attr)
        if _usable(v):
            return v.strip()
    return None


def json_ld_objects(sel: Selector) -> list[dict[str, Any]]:
    """Every JSON object in the page's `application/ld+json` scripts, flattened through lists and @graph."""
    out: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for n in node:
                walk(n)
        elif isinstance(node, dict):
            out.append(node)
            if "@graph" in node:
                walk(node["@graph"])

    for text in sel.xpath('//script[@type="application/ld+json"]/text()').getall():
        try:
            walk(json.loads(text))
        except json.JSONDecodeError:
            continue  # shops ship broken JSON-LD surprisingly often
    return out


def _is_product(obj: dict[str, Any]) -> bool:
    t = obj.get("@type")
    types = t if isinstance(t, list) else [t]
    return any(isinstance(x, str) and x.split("/")[-1] in ("Product", "ProductGroup", "IndividualProduct")
               for x in types)


def json_ld_products(sel: Selector) -> list[dict[str, Any]]:
    """The JSON-LD objects typed Product (or ProductGroup)."""
    return [o for o in json_ld_objects(sel) if _is_product(o)]


def _ld_images(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [u for v in value for u in _ld_images(v)]
    if isinstance(value, dict):  # ImageObject
        for k in ("contentUrl", "url"):
            if isinstance(value.get(k), str):
                return [value[k]]
    return []


def _ld_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return value["name"]
    if isinstance(value, list) and value:
        return _ld_name(value[0])
    return None


def _ld_price(offers: Any) -> tuple[str | None, str | None]:
    if isinstance(offers, list):
        offers = offers[0] if offers else None
    if not isinstance(offers, dict):
        return None, None
    price = offers.get("price", offers.get("lowPrice"))
    if price is None and isinstance(offers.get("priceSpecification"), dict):
        price = offers["priceSpecification"].get("price")
    cur = offers.get("priceCurrency")
    return (str(price) if price is not None else None), (str(cur) if cur else None)


def _select_text(sel: Selector, query: str) -> str | None:
    nodes = sel.xpath(query) if query.startswith(("/", "(")) else sel.css(query)
    text = " ".join(t.strip() for t in nodes.getall() if t and t.strip())
    return text or None


def product_facts(sel: Selector, fields: dict[str, str] | None = None) -> dict[str, str | None]:
    """Title, brand, price (+ currency) from JSON-LD, then og: tags, then the source file's selectors."""
    facts: dict[str, str | None] = {"title": None, "brand": None, "price": None, "currency": None}
    for p in json_ld_products(sel):
        facts["title"] = facts["title"] or _ld_name(p.get("name"))
        facts["brand"] = facts["brand"] or _ld_name(p.get("brand")) or _ld_name(p.get("manufacturer"))
        price, cur = _ld_price(p.get("offers"))
        facts["price"] = facts["price"] or price
        facts["currency"] = facts["currency"] or cur
    og = {
        "title": 'meta[property="og:title"]::attr(content)',
        "brand": 'meta[property="product:brand"]::attr(content)',
        "price": 'meta[property="product:price:amount"]::attr(content)',
        "currency": 'meta[property="product:price:currency"]::attr(content)',
    }
    for k, q in og.items():
        facts[k] = facts[k] or _select_text(sel, q)
    for k, q in (fields or {}).items():
        facts[k] = facts[k] or _select_text(sel, q)
    if not facts["title"]:
        facts["title"] = _select_text(sel, "title::text")
    return facts


def image_urls(sel: Selector, base_url: str, rule: ImageRule) -> list[str]:
    """Absolute image URLs of a product page in page order, without repeats.

    Order: the rule's selectors, then og:image, then JSON-LD Product.image. Relative URLs resolve against
    `base_url` (for an archived page, the page's original URL)."""
    found: list[str] = []
    for q in rule.css:
        found += [u for el in sel.css(q) if (u := element_image_url(el))]
    for q in rule.xpath:
        found += [u for el in sel.xpath(q) if (u := element_image_url(el))]
    if rule.og_image:
        found += sel.css('meta[property="og:image"]::attr(content), meta[property="og:image:url"]::attr(content),'
                         ' meta[property="og:image:secure_url"]::attr(content)').getall()
    if rule.json_ld:
        for p in json_ld_products(sel):
            found += _ld_images(p.get("image"))
    out, seen = [], set()
    for u in found:
        if not _usable(u):
            continue
        absolute = urljoin(base_url, u.strip())
        if not absolute.startswith(("http://", "https://")) or absolute in seen:
            continue
        if rule.allow and not any(re.search(a, absolute) for a in rule.allow):
            continue
        if any(re.search(d, absolute) for d in rule.deny):
            continue
        seen.add(absolute)
        out.append(absolute)
    return out
