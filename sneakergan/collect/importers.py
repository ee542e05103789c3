"""Importers that need no crawling: a folder of images, a URL list file, an Instagram data export.

Instagram is never crawled (that needs a login and breaks its terms). A person can download the data
export of their own account (Settings -> Your activity -> Download your information, JSON format); this
module reads that zip or folder: media files plus the posts / saved-posts JSON, keeping caption, date and
post link as provenance.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from sneakergan.collect.config import CrawlConfig, SourceError
from sneakergan.collect.store import Store

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".jfif"}

Progress = Callable[[int], None]  # called with how many files were handled since the last call


@dataclass
class ImportReport:
    """What an import did."""

    seen: int = 0  # candidate files
    new_ok: int = 0
    rejected: int = 0
    duplicates: int = 0  # bytes already in the store, linked to this new place
    skipped: int = 0  # this place was imported before
    link_only: int = 0  # instagram saved posts whose media is not in the export

    def add(self, rec: dict[str, Any]) -> None:
        if not rec["new"]:
            self.duplicates += rec["linked"]
            self.skipped += not rec["linked"]
        elif rec["status"] == "ok":
            self.new_ok += 1
        else:
            self.rejected += 1


def _limits(cfg: CrawlConfig) -> dict[str, int]:
    return {"max_pixels": cfg.max_pixels, "max_bytes": cfg.max_bytes, "min_side": cfg.min_side}


# -- folders ------------------------------------------------------------------------------------------
def list_image_files(root: Path, all_files: bool = False) -> list[Path]:
    """Image files under `root` (by extension unless `all_files`), hidden files and folders skipped, sorted."""
    if root.is_file():
        return [root]
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if all_files or p.suffix.lower() in IMAGE_EXTENSIONS:
            out.append(p)
    return out


def import_folder(store: Store, root: str | Path, cfg: CrawlConfig | None = None, all_files: bool = False,
                  progress: Progress | None = None) -> ImportReport:
    """Add every image under `root`; a re-run skips files already imported from the same path."""
    cfg = cfg or CrawlConfig()
    root = Path(root).resolve()
    if not root.exists():
        raise SourceError(f"{root} does not exist")
    report = ImportReport()
    files = list_image_files(root, all_files)
    for p in files:
        report.seen += 1
        uri = p.as_uri()
        if store.has_image_url(uri):
            report.skipped += 1
        else:
            size = p.stat().st_size
            src = {"kind": "folder", "image_url": uri,
                   "extra": {"path": str(p.relative_to(root)) if p != root else p.name, "root": str(root)}}
            if size > cfg.max_bytes:  # judged by its size alone: never read gigabytes to learn that
                store.record_failure(uri, "folder", "too_large_bytes", f"{size} bytes is over {cfg.max_bytes}")
            else:
                report.add(store.add_bytes(p.read_bytes(), src, **_limits(cfg)))
        if progress:
            progress(1)
    return report


# -- URL lists ----------------------------------------------------------------------------------------
def read_url_list(path: str | Path) -> list[dict[str, str]]:
    """Entries of a .txt (one URL per line, # comments) or .csv (a `url` or `image_url` column, optional
    page_url, title, brand, price, caption columns) file; duplicates dropped, order kept."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{p} does not exist")
    text = p.read_text(encoding="utf-8-sig")
    entries: list[dict[str, str]] = []
    if p.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        key = cols.get("url") or cols.get("image_url")
        if key is None:
            raise SourceError(f"{p}: a CSV needs a 'url' or 'image_url' column (has {reader.fieldnames})")
        for row in reader:
            url = (row.get(key) or "").strip()
            if url:
                e = {"url": url}
                for k in ("page_url", "title", "brand", "price", "caption"):
                    if cols.get(k) and (row.get(cols[k]) or "").strip():
                        e[k] = row[cols[k]].strip()
                entries.append(e)
    else:
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                entries.append({"url": line.split()[0]})
    bad = [e["url"] for e in entries if not e["url"].startswith(("http://", "https://"))]
    if bad:
        raise SourceError(f"{p}: not an http(s) URL: {bad[0]!r}")
    seen, out = set(), []
    for e in entries:
        if e["url"] not in seen:
            seen.add(e["url"])
            out.append(e)
    return out


# -- Instagram data export ----------------------------------------------------------------------------
class _Export:
    """Uniform read access to an export that is a zip or an unpacked folder."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = zipfile.ZipFile(path) if path.is_file() else None
        if self.zip:
            names = [n for n in self.zip.namelist() if not n.endswith("/")]
        else:
            names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        self.names = sorted(names)
        self._lower = {n.lower(): n for n in self.names}

    def read(self, name: str) -> bytes:
        if self.zip:
            return self.zip.read(name)
        return (self.path / name).read_bytes()

    def size(self, name: str) -> int:
        return self.zip.getinfo(name).file_size if self.zip else (self.path / name).stat().st_size

    def resolve(self, uri: str) -> str | None:
        """An export-internal media path, tolerating a leading folder the zip may add."""
        uri = uri.lstrip("/")
        if uri.lower() in self._lower:
            return self._lower[uri.lower()]
        hits = [n for n in self.names if n.lower().endswith("/" + uri.lower())]
        return hits[0] if len(hits) == 1 else None


def _fix_mojibake(s: str) -> str:
    """Instagram exports write UTF-8 text as Latin-1 escapes ('cafÃ©'); undo that when it applies."""
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def _when(value: Any) -> str | None:
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, timezone.utc).isoformat(timespec="seconds")
    if isinstance(value, str) and value:
        return value
    return None


def _hrefs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "href" and isinstance(v, str) and v.startswith("http"):
                yield v
            else:
                yield from _hrefs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _hrefs(v)


def _posts(doc: Any) -> Iterator[tuple[dict[str, Any], bool]]:
    """(post, saved) pairs from any of the export's JSON shapes (posts_1.json, saved_posts.json, the older
    media.json with photos/videos lists)."""
    if isinstance(doc, list):
        for p in doc:
            if isinstance(p, dict):
                yield p, False
    elif isinstance(doc, dict):
        for k, v in doc.items():
            if isinstance(v, list) and k in ("ig_saved_media", "saved_saved_media", "saved_media"):
                yield from ((p, True) for p in v if isinstance(p, dict))
            elif isinstance(v, list) and k in ("photos", "ig_posts", "posts", "media"):
                yield from ((p, False) for p in v if isinstance(p, dict))


def _media(post: dict[str, Any]) -> list[dict[str, Any]]:
    """Media entries of a post: `media` list, or the post itself when it carries a uri/path."""
    if isinstance(post.get("media"), list):
        return [m for m in post["media"] if isinstance(m, dict)]
    return [post] if ("uri" in post or "path" in post) else []


def import_instagram_export(store: Store, export: str | Path, cfg: CrawlConfig | None = None,
                            progress: Progress | None = None,
                            total: Callable[[int], None] | None = None) -> ImportReport:
    """Import the images of an Instagram data export (zip or folder). Nothing is fetched from Instagram."""
    cfg = cfg or CrawlConfig()
    path = Path(export)
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    try:
        ex = _Export(path)
    except zipfile.BadZipFile:
        raise SourceError(f"{path} is neither a folder nor a zip file") from None
    json_files = [n for n in ex.names if n.lower().endswith(".json")
                  and any(w in PurePosixPath(n).name.lower() for w in ("post", "saved", "media"))]
    if not json_files:
        raise SourceError(f"{path} has no posts/saved-posts JSON: is it an Instagram export in JSON format?")
    jobs: list[tuple[str, dict[str, Any]]] = []
    report = ImportReport()
    for jf in json_files:
        try:
            doc = json.loads(ex.read(jf).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        for post, saved in _posts(doc):
            links = list(_hrefs(post))
            post_caption = post.get("title") or post.get("caption")
            post_time = _when(post.get("creation_timestamp") or post.get("taken_at"))
            media = _media(post)
            if not media:
                report.link_only += saved and bool(links)
                continue
            for m in media:
                uri = m.get("uri") or m.get("path")
                name = ex.resolve(uri) if isinstance(uri, str) else None
                if name is None:
                    report.link_only += saved
                    continue
                if PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
                    continue  # videos
                caption = m.get("title") or m.get("caption") or post_caption
                jobs.append((name, {
                    "kind": "instagram", "image_url": f"instagram-export:{name}",
                    "page_url": links[0] if links else None,
                    "caption": _fix_mojibake(caption) if isinstance(caption, str) and caption else None,
                    "extra": {"taken_at": _when(m.get("creation_timestamp") or m.get("taken_at")) or post_time,
                              "saved": saved, "export_file": jf}}))
    if total:
        total(len(jobs))
    for name, src in jobs:
        report.seen += 1
        if store.has_image_url(src["image_url"]):
            report.skipped += 1
        elif ex.size(name) > cfg.max_bytes:
            store.record_failure(src["image_url"], "instagram", "too_large_bytes", f"{ex.size(name)} bytes")
        else:
            report.add(store.add_bytes(ex.read(name), src, **_limits(cfg)))
        if progress:
            progress(1)
    return report
