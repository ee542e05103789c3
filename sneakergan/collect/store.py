"""The store: content-addressed original image bytes plus one SQLite manifest.

Layout (see docs/CONTRACTS.md)::

    STORE/
      objects/ab/abcdef...<sha256>.<ext>   original bytes of every image that decoded fine
      manifest.sqlite                      images, sources, marks, prepared (+ collect's crawl state)

Writers append; rows are never rewritten (except `prepared`, a cache owned by prepare). Every image is
verified by decoding it with Pillow before it is kept; a rejected download still gets an `images` row
(sha256 of the bytes received, no object file) so a re-crawl never fetches it again. Exact duplicates are
stored once and linked to every place they were found through `sources`.

Besides the contract's tables, collect keeps its own crawl state here so a killed crawl resumes without
fetching anything twice: `pages` (what each fetched page pointed to) and `failures` (URLs that gave no
image bytes: HTTP errors, oversized downloads).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..fileio import atomic_write_bytes
from ..errors import UserError

# Defaults sized for product photos: a 40 MP cap is far above any shop image and far below a bomb.
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 30 * 1024 * 1024
DEFAULT_MIN_SIDE = 64

SOURCE_KINDS = ("shop", "wayback", "folder", "urls", "instagram")
MARKS = ("keep", "reject", "favourite", "clear")
SOURCE_FIELDS = ("kind", "page_url", "image_url", "snapshot_time", "title", "brand", "price", "caption", "extra")

# Modes prepare can turn into RGB; the value (if any) is the note recorded as the row's reason.
_MODE_NOTES: dict[str, str | None] = {
    "RGB": None,
    "RGBA": "has an alpha channel; flatten onto a background before use",
    "RGBX": None,
    "L": "greyscale image",
    "LA": "greyscale image with alpha",
    "1": "1-bit black-and-white image",
    "P": "palette image; convert to RGB before use",
    "PA": "palette image with alpha; convert to RGB before use",
    "CMYK": "CMYK image; convert to RGB before use",
    "YCbCr": "YCbCr image; convert to RGB before use",
    "I;16": "16-bit greyscale image; scale to 8 bits before use",
    "I;16B": "16-bit greyscale image; scale to 8 bits before use",
    "I;16L": "16-bit greyscale image; scale to 8 bits before use",
    "I": "32-bit integer greyscale image; scale to 8 bits before use",
}

_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif",
               "MPO": "jpg", "AVIF": "avif", "HEIF": "heic", "ICO": "ico", "PPM": "ppm", "TGA": "tga"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
  sha256 TEXT PRIMARY KEY, path TEXT, width INT, height INT, format TEXT, mode TEXT, bytes INT,
  status TEXT, reason TEXT, created_at TEXT);
CREATE INDEX IF NOT EXISTS images_status ON images(status);
CREATE TABLE IF NOT EXISTS sources (
  id INTEGER PRIMARY KEY, sha256 TEXT, kind TEXT, page_url TEXT, image_url TEXT, snapshot_time TEXT,
  title TEXT, brand TEXT, price TEXT, caption TEXT, extra TEXT, created_at TEXT);
CREATE INDEX IF NOT EXISTS sources_sha256 ON sources(sha256);
CREATE INDEX IF NOT EXISTS sources_image_url ON sources(image_url);
-- one row per place an image was found: re-crawls and resumed crawls add nothing twice
CREATE UNIQUE INDEX IF NOT EXISTS sources_place ON sources(
  sha256, kind, COALESCE(page_url, ''), COALESCE(image_url, ''), COALESCE(snapshot_time, ''));
CREATE TABLE IF NOT EXISTS marks (id INTEGER PRIMARY KEY, sha256 TEXT, mark TEXT, created_at TEXT);
CREATE INDEX IF NOT EXISTS marks_sha256 ON marks(sha256);
CREATE TABLE IF NOT EXISTS prepared (
  sha256 TEXT PRIMARY KEY, status TEXT, reason TEXT, boring REAL, features TEXT, silhouette TEXT,
  width INT, height INT, prepared_at TEXT);
CREATE TABLE IF NOT EXISTS pages (
  job TEXT, url TEXT, kind TEXT, result TEXT, fetched_at TEXT, PRIMARY KEY (job, url));
CREATE TABLE IF NOT EXISTS failures (
  url TEXT PRIMARY KEY, kind TEXT, page_url TEXT, status TEXT, reason TEXT, created_at TEXT);
"""


class StoreError(UserError):
    """A store that cannot be opened or a call that breaks the store's rules."""


@dataclass(frozen=True)
class Verdict:
    """What decoding a file said about it."""

    status: str  # "ok" or a rejection code
    reason: str | None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None


def now_iso() -> str:
    """UTC time as ISO-8601 with seconds, the manifest's timestamp format."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_hex(data: bytes) -> str:
    """The content address of some bytes."""
    return hashlib.sha256(data).hexdigest()


class ImageRejected(ValueError):
    """Bytes that Pillow cannot open as an image; `code` is the manifest status, `reason` a sentence."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def open_untrusted(data: bytes) -> Image.Image:
    """Open (not decode) image bytes from the web: reads the header only, raises ImageRejected on anything odd.

    Pillow's own bomb warning is silenced because callers apply their pixel limit to `img.size` before decoding.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageRejected("too_many_pixels", f"decompression bomb: {e}") from None
    except (UnidentifiedImageError, ValueError, TypeError) as e:
        raise ImageRejected("not_image", f"not a recognisable image ({type(e).__name__})") from None
    except Exception as e:  # Pillow plugins raise many types on hostile headers
        raise ImageRejected("decode_error", f"header could not be read: {type(e).__name__}: {e}") from None


def verify_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    min_side: int = DEFAULT_MIN_SIDE,
) -> Verdict:
    """Decode `data` with Pillow and say whether it is a usable still image. Never raises.

    The pixel limit is checked from the header before decoding, so a decompression bomb costs nothing.
    """
    if len(data) > max_bytes:
        return Verdict("too_large_bytes", f"{len(data)} bytes is over the limit of {max_bytes} bytes")
    if not data:
        return Verdict("not_image", "empty file")
    try:
        img = open_untrusted(data)
    except ImageRejected as r:
        return Verdict(r.code, r.reason)
    with img:
        w, h = img.size
        fmt, mode = img.format, img.mode
        meta = {"width": w, "height": h, "format": fmt, "mode": mode}
        if w * h > max_pixels:
            return Verdict("too_many_pixels", f"{w}x{h} = {w * h} pixels is over the limit of {max_pixels}", **meta)
        if getattr(img, "is_animated", False) and getattr(img, "n_frames", 1) > 1:
            return Verdict("animated", f"animated {fmt} with {img.n_frames} frames", **meta)
        if min(w, h) < min_side:
            return Verdict("too_small", f"{w}x{h}: shorter side is under {min_side} pixels", **meta)
        if mode not in _MODE_NOTES:
            return Verdict("unsupported_mode", f"pixel mode {mode} cannot be turned into RGB", **meta)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.load()
        except Image.DecompressionBombError as e:
            return Verdict("too_many_pixels", f"decompression bomb: {e}", **meta)
        except Exception as e:  # truncated or corrupt data: OSError, SyntaxError, ValueError, ...
            return Verdict("decode_error", f"could not decode: {type(e).__name__}: {e}", **meta)
    return Verdict("ok", _MODE_NOTES[mode], **meta)


def _source_row(source: dict[str, Any]) -> dict[str, Any]:
    unknown = set(source) - set(SOURCE_FIELDS)
    if unknown:
        raise StoreError(f"unknown source fields: {sorted(unknown)}")
    kind = source.get("kind")
    if kind not in SOURCE_KINDS:
        raise StoreError(f"source kind must be one of {SOURCE_KINDS}, got {kind!r}")
    row = {f: source.get(f) for f in SOURCE_FIELDS}
    if row["extra"] is not None and not isinstance(row["extra"], str):
        row["extra"] = json.dumps(row["extra"], sort_keys=True, ensure_ascii=False)
    for f in ("price", "snapshot_time"):
        if row[f] is not None:
            row[f] = str(row[f])
    return row


class Store:
    """A store folder: objects by sha256 plus `manifest.sqlite`. Use `Store.open`."""

    def __init__(self, root: Path, conn: sqlite3.Connection):
        self.root = root
        self._conn = conn

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, create: bool = True) -> "Store":
        """Open the store at `path`; with `create`, make the folders and schema if missing."""
        root = Path(path)
        manifest = root / "manifest.sqlite"
        if not manifest.exists():
            if not create:
                raise StoreError(f"{root} is not a store (no manifest.sqlite)")
            if root.exists() and not root.is_dir():
                raise StoreError(f"{root} exists and is not a folder")
            (root / "objects").mkdir(parents=True, exist_ok=True)
        # Several processes (crawl, curate page, prepare) share the manifest: WAL + a generous busy wait.
        conn = sqlite3.connect(manifest, timeout=60, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            conn.executescript(SCHEMA)
        return cls(root, conn)

    def close(self) -> None:
        """Close the manifest connection."""
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- images and sources ----------------------------------------------------------------------
    def add_bytes(
        self,
        data: bytes,
        source: dict[str, Any],
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        min_side: int = DEFAULT_MIN_SIDE,
    ) -> dict[str, Any]:
        """Verify `data`, store it once by sha256 and link it to `source`.

        `source` holds the `sources` columns (kind required; extra may be a dict). Returns the image row
        plus `new` (first time these bytes were seen) and `linked` (a new place was recorded).
        Only images with status 'ok' get an object file.
        """
        src = _source_row(source)
        sha = sha256_hex(data)
        row = self.get(sha)
        new = row is None
        if new:
            v = verify_image(data, max_pixels=max_pixels, max_bytes=max_bytes, min_side=min_side)
            rel = None
            if v.status == "ok":
                ext = _EXTENSIONS.get(v.format or "", (v.format or "bin").lower())
                rel = f"objects/{sha[:2]}/{sha}.{ext}"
                _write_atomic(self.root / rel, data)
            row = {"sha256": sha, "path": rel, "width": v.width, "height": v.height, "format": v.format,
                   "mode": v.mode, "bytes": len(data), "status": v.status, "reason": v.reason,
                   "created_at": now_iso()}
            with self._conn:
                self._conn.execute(
                    "INSERT OR IGNORE INTO images VALUES "
                    "(:sha256, :path, :width, :height, :format, :mode, :bytes, :status, :reason, :created_at)", row)
                linked = self._insert_source(sha, src)
        else:
            with self._conn:
                linked = self._insert_source(sha, src)
        return {**row, "new": new, "linked": linked}

    def add_source(self, sha256: str, source: dict[str, Any]) -> bool:
        """Link an image already in the store to one more place; False if that place was known."""
        if self.get(sha256) is None:
            raise StoreError(f"no image {sha256} in the store")
        with self._conn:
            return self._insert_source(sha256, _source_row(source))

    def _insert_source(self, sha: str, src: dict[str, Any]) -> bool:
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO sources (sha256, kind, page_url, image_url, snapshot_time, title, brand, price,"
            " caption, extra, created_at) VALUES (:sha256, :kind, :page_url, :image_url, :snapshot_time, :title,"
            " :brand, :price, :caption, :extra, :created_at)", {**src, "sha256": sha, "created_at": now_iso()})
        return cur.rowcount == 1

    def has_image_url(self, url: str) -> bool:
        """True if bytes from this image URL are already in the store (ok or rejected)."""
        return self.sha_for_image_url(url) is not None

    def sha_for_image_url(self, url: str) -> str | None:
        """The sha256 of the bytes once fetched from `url`, or None."""
        r = self._conn.execute("SELECT sha256 FROM sources WHERE image_url = ? LIMIT 1", (url,)).fetchone()
        return r[0] if r else None

    def get(self, sha256: str) -> dict[str, Any] | None:
        """The `images` row for `sha256` as a dict, or None."""
        r = self._conn.execute("SELECT * FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        return dict(r) if r else None

    def sources_of(self, sha256: str) -> list[dict[str, Any]]:
        """Every place an image was found, oldest first (extra decoded from JSON)."""
        rows = self._conn.execute("SELECT * FROM sources WHERE sha256 = ? ORDER BY id", (sha256,)).fetchall()
        out = [dict(r) for r in rows]
        for r in out:
            r["extra"] = json.loads(r["extra"]) if r["extra"] else None
        return out

    def object_path(self, sha256: str) -> Path:
        """Absolute path of the stored bytes; KeyError if the image is unknown or was rejected."""
        r = self._conn.execute("SELECT path FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        if r is None or r[0] is None:
            raise KeyError(sha256)
        return self.root / r[0]

    def iter_images(self, status: str | None = "ok") -> Iterator[dict[str, Any]]:
        """Image rows ordered by sha256; `status=None` yields every row."""
        if status is None:
            cur = self._conn.execute("SELECT * FROM images ORDER BY sha256")
        else:
            cur = self._conn.execute("SELECT * FROM images WHERE status = ? ORDER BY sha256", (status,))
        for r in cur:
            yield dict(r)

    def counts(self) -> dict[str, Any]:
        """Summary counts.

        Keys: `images` (total rows), `ok`, `images_by_status` {status: n}, `sources_by_kind` {kind: n},
        `by_kind_status` {kind: {status: n}} (distinct images per source kind), `failures_by_reason`
        {reason code: n}, `marks` {mark: n} (latest mark per image, cleared ones left out).
        """
        q = self._conn.execute
        by_status = dict(q("SELECT status, COUNT(*) FROM images GROUP BY status").fetchall())
        by_kind = dict(q("SELECT kind, COUNT(*) FROM sources GROUP BY kind").fetchall())
        by_kind_status: dict[str, dict[str, int]] = {}
        for kind, status, n in q(
                "SELECT s.kind, i.status, COUNT(DISTINCT i.sha256) FROM sources s JOIN images i USING (sha256)"
                " GROUP BY s.kind, i.status").fetchall():
            by_kind_status.setdefault(kind, {})[status] = n
        failures = dict(q("SELECT status, COUNT(*) FROM failures GROUP BY status").fetchall())
        marks: dict[str, int] = {}
        for m in self.latest_marks().values():
            marks[m] = marks.get(m, 0) + 1
        return {"images": sum(by_status.values()), "ok": by_status.get("ok", 0), "images_by_status": by_status,
                "sources_by_kind": by_kind, "by_kind_status": by_kind_status, "failures_by_reason": failures,
                "marks": marks}

    # -- marks -----------------------------------------------------------------------------------
    def add_mark(self, sha256: str, mark: str) -> None:
        """Append a mark (keep|reject|favourite|clear); the latest one per image wins."""
        if mark not in MARKS:
            raise StoreError(f"mark must be one of {MARKS}, got {mark!r}")
        with self._conn:
            self._conn.execute("INSERT INTO marks (sha256, mark, created_at) VALUES (?, ?, ?)",
                               (sha256, mark, now_iso()))

    def latest_marks(self) -> dict[str, str]:
        """{sha256: mark} from the latest row per image; images whose latest mark is 'clear' are left out."""
        rows = self._conn.execute(
            "SELECT sha256, mark FROM marks WHERE id IN (SELECT MAX(id) FROM marks GROUP BY sha256)").fetchall()
        return {sha: m for sha, m in rows if m != "clear"}

    def undo_mark(self, sha256: str) -> str:
        """Append the value before the latest mark ('clear' if there was none); returns it.

        Append-only, so undoing twice restores the undone mark (undo of the undo)."""
        rows = self._conn.execute("SELECT mark FROM marks WHERE sha256 = ? ORDER BY id DESC LIMIT 2",
                                  (sha256,)).fetchall()
        previous = rows[1][0] if len(rows) == 2 else "clear"
        self.add_mark(sha256, previous)
        return previous

    # -- collect's crawl state -------------------------------------------------------------------
    def record_failure(self, url: str, kind: str, status: str, reason: str, page_url: str | None = None) -> None:
        """Remember that `url` gave no usable bytes (HTTP error, over the byte limit, ...)."""
        with self._conn:
            self._conn.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                               (url, kind, page_url, status, reason, now_iso()))

    def failure(self, url: str) -> dict[str, Any] | None:
        """The failure row for `url`, or None."""
        r = self._conn.execute("SELECT * FROM failures WHERE url = ?", (url,)).fetchone()
        return dict(r) if r else None

    def record_page(self, job: str, url: str, kind: str, result: dict[str, Any]) -> None:
        """Remember what a fetched page pointed to, so a resumed crawl need not fetch it again."""
        with self._conn:
            self._conn.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?)",
                               (job, url, kind, json.dumps(result, sort_keys=True), now_iso()))

    def page(self, job: str, url: str) -> dict[str, Any] | None:
        """The recorded result of a page in `job`, or None."""
        r = self._conn.execute("SELECT result FROM pages WHERE job = ? AND url = ?", (job, url)).fetchone()
        return json.loads(r[0]) if r else None

    def forget_job(self, job: str) -> int:
        """Drop a job's page records (a fresh re-crawl); images and sources stay."""
        with self._conn:
            return self._conn.execute("DELETE FROM pages WHERE job = ?", (job,)).rowcount


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file + rename so a kill never leaves a half object under its final name."""
    if path.exists() and path.stat().st_size == len(data):
        return  # content-addressed: same name and size is the same object
    atomic_write_bytes(path, data)
