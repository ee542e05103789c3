"""The Wayback Machine's CDX API and snapshot URLs, as pure functions.

CDX docs: https://github.com/internetarchive/wayback/tree/master/wayback-cdx-server . A query lists
captures of a URL pattern; `id_` after the timestamp returns the archived bytes as they were captured
(no toolbar, no link rewriting), which is what an image dataset needs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from sneakergan.collect.config import SourceError

DEFAULT_CDX_URL = "https://web.archive.org/cdx/search/cdx"
DEFAULT_WAYBACK_URL = "https://web.archive.org/web"
CDX_FIELDS = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length")


@dataclass(frozen=True)
class Capture:
    """One CDX row."""

    timestamp: str  # YYYYMMDDhhmmss
    original: str
    mimetype: str
    statuscode: str
    digest: str = ""


def normalise_date(value: str, end: bool = False) -> str:
    """'2012', '2012-05', '2012-05-01' or '20120501' -> CDX digits (YYYY[MM[DD]])."""
    digits = re.sub(r"[-/.]", "", value.strip())
    if not re.fullmatch(r"\d{4}(\d{2}){0,5}", digits):
        raise SourceError(f"date {value!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
    return digits


def cdx_query_url(
    cdx_url: str,
    target: str,
    date_from: str | None = None,
    date_to: str | None = None,
    mimetype: str = "text/html",
    match: str | None = None,
    limit: int = 1000,
    resume_key: str | None = None,
) -> str:
    """A CDX query for unique (collapse=urlkey), status-200 captures of a domain or URL prefix.

    `target` is a bare domain ("shop.com": every page of it and its subdomains) or a URL prefix
    ("shop.com/products/"). `mimetype` is a regex on the capture's MIME type; `match` a regex on its URL.
    """
    target = re.sub(r"^https?://", "", target.strip()).rstrip("*")
    if not target or " " in target:
        raise SourceError(f"{target!r} is not a domain or URL prefix")
    bare_domain = "/" not in target.rstrip("/")
    params: list[tuple[str, str]] = [
        ("url", target.rstrip("/") if bare_domain else target),
        ("matchType", "domain" if bare_domain else "prefix"),
        ("output", "json"),
        ("fl", ",".join(CDX_FIELDS)),
        ("filter", "statuscode:200"),
        ("filter", f"mimetype:{mimetype}"),
        ("collapse", "urlkey"),
        ("limit", str(limit)),
        ("showResumeKey", "true"),
    ]
    if match:
        params.append(("filter", f"original:{match}"))
    if date_from:
        params.append(("from", normalise_date(date_from)))
    if date_to:
        params.append(("to", normalise_date(date_to)))
    if resume_key:
        params.append(("resumeKey", resume_key))
    return f"{cdx_url}?{urlencode(params)}"


def parse_cdx(text: str) -> tuple[list[Capture], str | None]:
    """Parse a JSON CDX answer into captures and the resume key (None when this was the last page)."""
    text = text.strip()
    if not text:
        return [], None
    rows = json.loads(text)
    if not rows:
        return [], None
    header, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    captures, resume = [], None
    for i, row in enumerate(body):
        if not row:  # an empty row separates the resume key from the data
            if i + 1 < len(body) and body[i + 1]:
                resume = body[i + 1][0]
            break
        get = lambda k: row[col[k]] if k in col and col[k] < len(row) else ""  # noqa: E731
        captures.append(Capture(get("timestamp"), get("original"), get("mimetype"), get("statuscode"), get("digest")))
    return captures, resume


def snapshot_url(wayback_url: str, timestamp: str, original: str, raw: bool = True) -> str:
    """`{wayback}/{timestamp}id_/{original}`: the archived bytes as captured (raw=False: the replay page)."""
    return f"{wayback_url.rstrip('/')}/{timestamp}{'id_' if raw else ''}/{original}"


_SNAPSHOT = re.compile(r"/(\d{4,14})(?:[a-z]{2}_)?/(.+)$")


def parse_snapshot_url(url: str) -> tuple[str, str] | None:
    """(timestamp, original URL) of a snapshot URL, or None. Wayback redirects to the nearest capture,
    so the final URL of an image fetch tells when that image was really archived."""
    path = urlsplit(url).path
    m = _SNAPSHOT.search(url[url.find(path):] if path else "")
    if not m:
        return None
    original = m.group(2)
    if re.match(r"^https?:/[^/]", original):  # some proxies squash the double slash
        original = original.replace(":/", "://", 1)
    return m.group(1), original
