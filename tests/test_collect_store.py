"""The store contract (docs/CONTRACTS.md): content addressing, verification by decoding, provenance, marks."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_collect import images as fx  # noqa: E402

from sneakergan.collect.store import Store, StoreError, sha256_hex, verify_image  # noqa: E402


def src(url: str, page: str = "http://shop.test/p/1", **kw) -> dict:
    return {"kind": "shop", "page_url": page, "image_url": url, **kw}


def test_open_creates_layout_and_wal(tmp_path):
    with pytest.raises(StoreError):
        Store.open(tmp_path / "missing", create=False)
    store = Store.open(tmp_path / "s")
    assert (tmp_path / "s" / "objects").is_dir()
    mode = sqlite3.connect(tmp_path / "s" / "manifest.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    cols = [r[1] for r in store._conn.execute("PRAGMA table_info(images)")]
    assert cols == ["sha256", "path", "width", "height", "format", "mode", "bytes", "status", "reason", "created_at"]
    store.close()
    Store.open(tmp_path / "s", create=False).close()


def test_add_bytes_stores_once_and_links_every_source(tmp_path):
    store = Store.open(tmp_path)
    data = fx.jpeg(120, 90, seed=3)
    rec = store.add_bytes(data, src("http://shop.test/a.jpg", title="Air Test", brand="Nike", price="99.00",
                                    extra={"currency": "EUR"}))
    sha = sha256_hex(data)
    assert rec["new"] and rec["linked"] and rec["status"] == "ok" and rec["sha256"] == sha
    assert (rec["width"], rec["height"], rec["format"], rec["bytes"]) == (120, 90, "JPEG", len(data))
    path = store.object_path(sha)
    assert path == tmp_path / "objects" / sha[:2] / f"{sha}.jpg" and path.read_bytes() == data
    # same bytes from another page and URL: one image, two sources; the same place again adds nothing
    rec2 = store.add_bytes(data, src("http://shop.test/b.jpg", page="http://shop.test/p/2"))
    assert not rec2["new"] and rec2["linked"]
    assert not store.add_bytes(data, src("http://shop.test/b.jpg", page="http://shop.test/p/2"))["linked"]
    assert not store.add_source(sha, src("http://shop.test/a.jpg"))
    assert store.add_source(sha, {"kind": "folder", "image_url": "file:///x.jpg"})
    assert len(list(store.iter_images())) == 1
    sources = store.sources_of(sha)
    assert [s["image_url"] for s in sources] == ["http://shop.test/a.jpg", "http://shop.test/b.jpg", "file:///x.jpg"]
    assert sources[0]["brand"] == "Nike" and sources[0]["extra"] == {"currency": "EUR"}
    assert store.has_image_url("http://shop.test/b.jpg") and not store.has_image_url("http://shop.test/c.jpg")
    assert store.counts()["sources_by_kind"] == {"shop": 2, "folder": 1}
    with pytest.raises(StoreError):
        store.add_bytes(data, {"kind": "myspace"})
    with pytest.raises(StoreError):
        store.add_source("0" * 64, src("http://x"))


@pytest.mark.parametrize("data, status", [
    (b"<html>not an image</html>", "not_image"),
    (b"", "not_image"),
    (fx.truncated(fx.jpeg(200, 200, seed=1)), "decode_error"),
    (fx.jpeg(40, 200), "too_small"),
    (fx.animated_gif(), "animated"),
    (fx.bomb_png(10_000), "too_many_pixels"),
])
def test_bad_files_are_rejected_with_reason(tmp_path, data, status):
    store = Store.open(tmp_path)
    rec = store.add_bytes(data, src("http://shop.test/bad"), max_pixels=20_000_000)
    assert rec["status"] == status and rec["reason"]
    assert rec["path"] is None and not any((tmp_path / "objects").rglob("*.*"))
    with pytest.raises(KeyError):
        store.object_path(rec["sha256"])
    assert store.has_image_url("http://shop.test/bad")  # never fetched again
    assert store.counts()["images_by_status"] == {status: 1}
    assert list(store.iter_images()) == [] and len(list(store.iter_images(status=None))) == 1


def test_byte_limit(tmp_path):
    v = verify_image(fx.jpeg(), max_bytes=100)
    assert v.status == "too_large_bytes" and "100" in v.reason


@pytest.mark.parametrize("maker, mode", [
    (lambda: fx.jpeg(mode="CMYK"), "CMYK"),
    (lambda: fx.png(mode="I;16"), "I;16"),
    (lambda: fx.png(mode="P"), "P"),
    (lambda: fx.png(mode="RGBA"), "RGBA"),
    (lambda: fx.png(mode="L"), "L"),
])
def test_unusual_modes_are_kept_with_a_note(tmp_path, maker, mode):
    store = Store.open(tmp_path)
    rec = store.add_bytes(maker(), src("http://shop.test/m"))
    assert rec["status"] == "ok" and rec["mode"] == mode
    assert rec["reason"]  # says what prepare must convert
    with Image.open(store.object_path(rec["sha256"])) as im:
        assert im.mode == mode


def test_marks_latest_wins_and_undo_appends(tmp_path):
    store = Store.open(tmp_path)
    a, b = "a" * 64, "b" * 64
    store.add_mark(a, "keep")
    store.add_mark(a, "reject")
    store.add_mark(b, "favourite")
    assert store.latest_marks() == {a: "reject", b: "favourite"}
    assert store.undo_mark(a) == "keep" and store.latest_marks()[a] == "keep"
    assert store.undo_mark(b) == "clear" and b not in store.latest_marks()
    n = store._conn.execute("SELECT COUNT(*) FROM marks").fetchone()[0]
    assert n == 5  # append-only
    with pytest.raises(StoreError):
        store.add_mark(a, "love")
    assert store.counts()["marks"] == {"keep": 1}


def test_two_connections_share_the_manifest(tmp_path):
    s1, s2 = Store.open(tmp_path), Store.open(tmp_path)
    rec = s1.add_bytes(fx.png(seed=5), src("http://shop.test/p.png"))
    assert s2.get(rec["sha256"])["status"] == "ok"
    s2.add_mark(rec["sha256"], "keep")
    assert s1.latest_marks() == {rec["sha256"]: "keep"}


def test_crawl_state(tmp_path):
    store = Store.open(tmp_path)
    store.record_page("job", "http://shop.test/", "shop", {"links": ["http://shop.test/p/1"]})
    assert store.page("job", "http://shop.test/") == {"links": ["http://shop.test/p/1"]}
    assert store.page("other", "http://shop.test/") is None
    store.record_failure("http://shop.test/404.jpg", "shop", "http_404", "HTTP 404", page_url="http://shop.test/")
    assert store.failure("http://shop.test/404.jpg")["status"] == "http_404"
    assert store.counts()["failures_by_reason"] == {"http_404": 1}
    assert store.forget_job("job") == 1 and store.page("job", "http://shop.test/") is None
