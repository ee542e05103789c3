"""Local importers (folder, Instagram data export), page extraction, CDX parsing, source files, status."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from parsel import Selector
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_collect import images as fx  # noqa: E402

from sneakergan.cli import app  # noqa: E402
from sneakergan.collect import extract, wayback  # noqa: E402
from sneakergan.collect.config import ImageRule, SourceError, load_source, parse_source  # noqa: E402
from sneakergan.collect.importers import import_folder, import_instagram_export, read_url_list  # noqa: E402
from sneakergan.collect.store import Store, sha256_hex  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


# -- page extraction -----------------------------------------------------------------------------------
def test_srcset_picks_the_largest():
    assert extract.best_from_srcset("a.jpg 480w, b.jpg 1080w, c.jpg 720w") == "b.jpg"
    assert extract.best_from_srcset("a.jpg 1x,b.jpg 2x") == "b.jpg"
    assert extract.best_from_srcset("only.jpg") == "only.jpg"
    assert extract.best_from_srcset("") is None


def test_image_urls_lazy_og_and_json_ld():
    html = """<html><head>
      <meta property="og:image" content="https://cdn.test/og.jpg">
      <script type="application/ld+json">{"@context":"https://schema.org","@graph":[{"@type":"BreadcrumbList"},
        {"@type":"Product","name":"Zoom","brand":{"name":"Acme"},"image":[{"@type":"ImageObject",
         "contentUrl":"/ld.jpg"}, "/ld2.jpg"],"offers":{"price":"10.00","priceCurrency":"USD"}}]}</script>
      <script type="application/ld+json">{broken json</script></head><body>
      <div class="g"><img src="data:image/gif;base64,AAAA" data-src="/lazy.jpg">
      <img src="/thumb.jpg" data-srcset="/l1.jpg 300w, /l2.jpg 900w"><img src="/plain.jpg">
      <img src="/og.jpg"></div><img src="/logo.png"></body></html>"""
    sel = Selector(text=html)
    urls = extract.image_urls(sel, "https://shop.test/p/1", ImageRule(css=(".g img",), deny=(r"plain",)))
    assert urls == ["https://shop.test/lazy.jpg", "https://shop.test/l2.jpg", "https://shop.test/og.jpg",
                    "https://cdn.test/og.jpg", "https://shop.test/ld.jpg", "https://shop.test/ld2.jpg"]
    assert extract.product_facts(sel) == {"title": "Zoom", "brand": "Acme", "price": "10.00", "currency": "USD"}
    no_ld = ImageRule(css=(), og_image=False, json_ld=False)
    assert extract.image_urls(sel, "https://shop.test/p/1", no_ld) == []


# -- wayback -------------------------------------------------------------------------------------------
def test_cdx_query_and_parse():
    q = wayback.cdx_query_url("http://cdx.test/cdx", "https://shop.com", "2012-05", "2014", match=".*/p/.*",
                              limit=50)
    assert "url=shop.com&matchType=domain" in q and "collapse=urlkey" in q and "from=201205" in q
    assert "filter=statuscode%3A200" in q and "filter=mimetype%3Atext%2Fhtml" in q and "limit=50" in q
    assert "matchType=prefix" in wayback.cdx_query_url("http://cdx.test/cdx", "shop.com/shoes/")
    with pytest.raises(SourceError):
        wayback.cdx_query_url("http://cdx.test/cdx", "shop.com", "May 2012")
    text = json.dumps([["timestamp", "original", "mimetype", "statuscode"],
                       ["20120101000000", "http://shop.com/p/1", "text/html", "200"], [], ["KEY 1"]])
    caps, key = wayback.parse_cdx(text)
    assert [(c.timestamp, c.original) for c in caps] == [("20120101000000", "http://shop.com/p/1")]
    assert key == "KEY 1" and wayback.parse_cdx("[]") == ([], None)
    url = wayback.snapshot_url("https://web.archive.org/web", "20120101000000", "http://shop.com/a.jpg?x=1")
    assert url == "https://web.archive.org/web/20120101000000id_/http://shop.com/a.jpg?x=1"
    assert wayback.parse_snapshot_url(url) == ("20120101000000", "http://shop.com/a.jpg?x=1")


# -- source files --------------------------------------------------------------------------------------
def test_example_source_file_loads():
    for path in sorted((REPO / "examples" / "sources").glob("*.yaml")):
        src = load_source(path)
        assert src.start_urls and not src.product_pages.empty


@pytest.mark.parametrize("data, msg", [
    ({"name": "x"}, "start_urls is required"),
    ({"start_urls": ["https://a.test"], "bogus": 1}, "unknown keys"),
    ({"start_urls": ["https://a.test"], "images": {"css": 3}}, "images.css"),
    ({"start_urls": ["https://a.test"], "images": {"og_image": "yes"}}, "true or false"),
    ({"start_urls": ["https://a.test"], "fields": {"colour": "x"}}, "fields"),
])
def test_bad_source_files(data, msg):
    with pytest.raises(SourceError, match=msg):
        parse_source(data)


def test_url_list_txt_and_csv(tmp_path):
    txt = tmp_path / "l.txt"
    txt.write_text("# photos\nhttps://a.test/1.jpg\n\nhttps://a.test/2.jpg extra\nhttps://a.test/1.jpg\n")
    assert read_url_list(txt) == [{"url": "https://a.test/1.jpg"}, {"url": "https://a.test/2.jpg"}]
    csv_ = tmp_path / "l.csv"
    csv_.write_text("Image_URL,title\nhttps://a.test/3.jpg,Three\n")
    assert read_url_list(csv_) == [{"url": "https://a.test/3.jpg", "title": "Three"}]
    csv_.write_text("link\nhttps://a.test/3.jpg\n")
    with pytest.raises(SourceError, match="column"):
        read_url_list(csv_)


# -- folder --------------------------------------------------------------------------------------------
def test_folder_import_dedupes_and_resumes(tmp_path):
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    (root / ".hidden").mkdir()
    one = fx.jpeg(100, 100, seed=1)
    (root / "one.jpg").write_bytes(one)
    (root / "a" / "copy-of-one.JPG").write_bytes(one)
    (root / "a" / "b" / "p.png").write_bytes(fx.png(90, 90, seed=2, mode="P"))
    (root / "a" / "broken.jpg").write_bytes(fx.truncated(fx.jpeg(200, 200, seed=3)))
    (root / "a" / "notes.txt").write_text("not a photo")
    (root / ".hidden" / "x.jpg").write_bytes(fx.jpeg(100, 100, seed=4))
    store = Store.open(tmp_path / "store")
    calls = []
    rep = import_folder(store, root, progress=calls.append)
    assert (rep.seen, rep.new_ok, rep.rejected, rep.duplicates) == (4, 2, 1, 1) and sum(calls) == 4
    srcs = store.sources_of(sha256_hex(one))
    assert sorted(s["extra"]["path"] for s in srcs) == ["a/copy-of-one.JPG", "one.jpg"]
    assert all(s["kind"] == "folder" and s["image_url"].startswith("file://") for s in srcs)
    again = import_folder(store, root)
    assert (again.skipped, again.new_ok, again.duplicates) == (4, 0, 0)
    assert store.counts()["images_by_status"] == {"ok": 2, "decode_error": 1}


# -- instagram export ----------------------------------------------------------------------------------
def make_export(root: Path) -> dict[str, bytes]:
    """A small tree shaped like Instagram's JSON data export."""
    media = {"media/posts/202301/17890.jpg": fx.jpeg(120, 150, seed=40),
             "media/posts/202302/17891.jpg": fx.jpeg(130, 130, seed=41),
             "media/posts/202302/17892.mp4": b"\x00\x00\x00\x18ftypmp42"}
    for name, data in media.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    posts = [
        {"media": [{"uri": "media/posts/202301/17890.jpg", "creation_timestamp": 1673000000, "title": ""}],
         "title": "Found these in a caf\u00c3\u00a9 #sneakers", "creation_timestamp": 1673000000},
        {"media": [{"uri": "media/posts/202302/17891.jpg", "creation_timestamp": 1676000000,
                    "title": "Hand-made runners"},
                   {"uri": "media/posts/202302/17892.mp4", "creation_timestamp": 1676000000, "title": ""}]},
        {"media": [{"uri": "media/posts/202303/gone.jpg", "creation_timestamp": 1677000000, "title": ""}]},
    ]
    saved = {"saved_saved_media": [{"title": "tinybrand", "string_map_data": {
        "Saved on": {"href": "https://www.instagram.com/p/Cxyz123/", "timestamp": 1678000000}}}]}
    (root / "your_instagram_activity" / "content").mkdir(parents=True)
    (root / "your_instagram_activity" / "saved").mkdir(parents=True)
    (root / "your_instagram_activity" / "content" / "posts_1.json").write_text(json.dumps(posts))
    (root / "your_instagram_activity" / "saved" / "saved_posts.json").write_text(json.dumps(saved))
    return media


def test_instagram_export_folder_and_zip(tmp_path):
    folder = tmp_path / "instagram-me-2024"
    media = make_export(folder)
    zpath = tmp_path / "export.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for p in folder.rglob("*"):
            if p.is_file():
                z.write(p, f"instagram-me-2024/{p.relative_to(folder).as_posix()}")  # zips add a top folder

    store = Store.open(tmp_path / "s1")
    rep = import_instagram_export(store, folder)
    assert (rep.seen, rep.new_ok, rep.link_only) == (2, 2, 1)  # the video is skipped, the saved post has no media
    first = store.sources_of(sha256_hex(media["media/posts/202301/17890.jpg"]))[0]
    assert first["kind"] == "instagram" and first["caption"] == "Found these in a café #sneakers"
    assert first["extra"]["taken_at"] == "2023-01-06T10:13:20+00:00"
    second = store.sources_of(sha256_hex(media["media/posts/202302/17891.jpg"]))[0]
    assert second["caption"] == "Hand-made runners"

    store2 = Store.open(tmp_path / "s2")
    rep2 = import_instagram_export(store2, zpath)
    assert rep2.new_ok == 2
    assert sorted(r["sha256"] for r in store2.iter_images()) == sorted(r["sha256"] for r in store.iter_images())
    assert import_instagram_export(store2, zpath).skipped == 2
    with pytest.raises(SourceError, match="Instagram export"):
        import_instagram_export(store2, tmp_path / "s1")


def test_saved_post_link_is_kept_when_media_is_present(tmp_path):
    root = tmp_path / "exp"
    (root / "media" / "saved").mkdir(parents=True)
    data = fx.jpeg(100, 100, seed=50)
    (root / "media" / "saved" / "1.jpg").write_bytes(data)
    (root / "saved_posts.json").write_text(json.dumps({"saved_saved_media": [{
        "title": "tinybrand", "uri": "media/saved/1.jpg", "creation_timestamp": 1678000000,
        "string_map_data": {"Saved on": {"href": "https://www.instagram.com/p/Cxyz123/", "timestamp": 1}}}]}))
    store = Store.open(tmp_path / "s")
    assert import_instagram_export(store, root).new_ok == 1
    src = store.sources_of(sha256_hex(data))[0]
    assert src["page_url"] == "https://www.instagram.com/p/Cxyz123/" and src["extra"]["saved"] is True


# -- CLI -----------------------------------------------------------------------------------------------
def test_cli_import_and_status(tmp_path):
    folder = tmp_path / "exp"
    make_export(folder)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(fx.jpeg(100, 100, seed=60))
    (photos / "b.gif").write_bytes(fx.animated_gif())
    store = tmp_path / "store"
    r = runner.invoke(app, ["collect", "instagram", str(folder), "--store", str(store), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "2 new images" in r.output and "1 saved posts without media" in r.output
    r = runner.invoke(app, ["collect", "folder", str(photos), "--store", str(store), "--quiet"])
    assert r.exit_code == 0 and "1 new images, 1 rejected" in r.output
    r = runner.invoke(app, ["collect", "status", str(store), "--json"])
    counts = json.loads(r.output)
    assert counts["by_kind_status"] == {"folder": {"ok": 1, "animated": 1}, "instagram": {"ok": 2}}
    r = runner.invoke(app, ["collect", "status", str(store)])
    assert r.exit_code == 0 and "instagram" in r.output and "animated" in r.output and "3 usable images" in r.output
    r = runner.invoke(app, ["collect", "folder", str(tmp_path / "nope"), "--store", str(store)])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_status_of_missing_store_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sneakergan.cli", "collect", "status", str(tmp_path / "none")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "not a store" in r.stderr


# -- politeness helpers ---------------------------------------------------------------------------------
def test_backoff_grows_and_honours_retry_after():
    from sneakergan.collect.middlewares import backoff_delay, retry_after_seconds

    delays = [backoff_delay(n, base=1.0, cap=100.0) for n in (1, 2, 3, 4)]
    assert all(0.8 * 2 ** i <= d <= 1.2 * 2 ** i for i, d in enumerate(delays))
    assert backoff_delay(10, base=1.0, cap=30.0) == 30.0
    assert backoff_delay(1, base=1.0, cap=30.0, retry_after=7.0) == 7.0
    assert retry_after_seconds(b"12") == 12.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: go now
    assert retry_after_seconds("soon") is None
