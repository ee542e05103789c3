"""Crawls against a fixture webshop and a fake Wayback Machine on 127.0.0.1 (no internet).

Each crawl runs the CLI in a subprocess: Twisted's reactor starts once per process.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_collect.site import FixtureSite  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LIMITS = ["--max-bytes", "200000", "--max-pixels", "20000000"]
FAST = ["--delay", "0", "--per-domain", "1", "--backoff", "0.3", "--quiet"]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sneakergan.cli", "collect", *args]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    r = subprocess.run(cli(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(store: Path) -> dict[str, list[tuple]]:
    """Everything a crawl decided, without row ids and timestamps."""
    con = sqlite3.connect(store / "manifest.sqlite")
    try:
        return {
            "images": sorted(con.execute(
                "SELECT sha256, path, width, height, format, mode, bytes, status, reason FROM images")),
            "sources": sorted(con.execute(
                "SELECT sha256, kind, page_url, image_url, snapshot_time, title, brand, price, caption, extra"
                " FROM sources"), key=repr),
            "failures": sorted(con.execute("SELECT url, kind, page_url, status, reason FROM failures")),
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def site():
    with FixtureSite() as s:
        yield s


def write_source(tmp: Path, base: str) -> Path:
    p = tmp / "fixture-shop.yaml"
    p.write_text(f"""
name: fixture
start_urls: ["{base}/catalog"]
allowed_domains: ["127.0.0.1"]
product_pages: {{allow: ['/product/\\d+'], css: ['.product-grid']}}
pagination: {{css: ['.pagination']}}
deny: ['/cart']
images: {{css: ['.gallery img', '.gallery source']}}
fields: {{brand: '.brand::text', price: '.price::text'}}
""")
    return p


def fetched_counts(log) -> collections.Counter:
    """Times each URL was served, robots.txt and deliberate 503s left out."""
    return collections.Counter(p for p, status, _ in log if p != "/robots.txt" and status != 503)


def test_shop_crawl_then_kill_and_resume(site, tmp_path):
    source = write_source(tmp_path, site.base)
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    img = site.images

    # -- an uninterrupted crawl ----------------------------------------------------------------------
    site.reset()
    out = run_cli("shop", str(source), "--store", str(full), *FAST, *LIMITS)
    assert "9 new images" in out.stdout
    assert {ua.split()[0] for ua in site.user_agents} == {"sneakergan-collect/0.1"}
    log = list(site.log)
    assert fetched_counts(log).most_common(1)[0][1] == 1  # nothing fetched twice
    paths = [p for p, _, _ in log]
    assert "/robots.txt" in paths and not any(p.startswith("/private/") for p in paths)
    assert "/cart" not in paths and "/img/p1-small.jpg" not in paths  # deny rule; srcset takes the largest
    # 429/5xx are retried after a pause
    flaky = [(st, t) for p, st, t in log if p == "/img/flaky.jpg"]
    assert [st for st, _ in flaky] == [503, 200] and flaky[1][1] - flaky[0][1] >= 0.2

    m = manifest(full)
    status = {row[0]: row[7] for row in m["images"]}
    expected_ok = ["/img/p1-large.jpg", "/img/shared.jpg", "/img/p2.jpg", "/img/cmyk.jpg", "/img/palette.png",
                   "/img/grey16.png", "/img/p6.jpg", "/img/p6-wide.jpg", "/img/flaky.jpg"]
    assert sorted(s for s, st in status.items() if st == "ok") == sorted(sha(img[p]) for p in expected_ok)
    assert status[sha(img["/img/corrupt.jpg"])] == "decode_error"
    assert status[sha(img["/img/not-image.jpg"])] == "not_image"
    assert status[sha(img["/img/bomb.png"])] == "too_many_pixels"
    assert status[sha(img["/img/anim.gif"])] == "animated"
    assert all(row[8] for row in m["images"] if row[7] != "ok")  # every rejection has a reason
    failures = {url.removeprefix(site.base): st for url, _, _, st, _ in m["failures"]}
    assert failures == {"/img/huge.jpg": "too_large_bytes", "/img/missing.jpg": "http_404",
                        "/product/404": "http_404", "/private/product/9": "robots_disallowed"}
    # stored once by sha256, original bytes
    for p in expected_ok:
        h = sha(img[p])
        stored = list((full / "objects" / h[:2]).glob(f"{h}.*"))
        assert len(stored) == 1 and stored[0].read_bytes() == img[p]
    assert len(list((full / "objects").rglob("*.*"))) == len(expected_ok)

    # provenance: every place an image was found
    places = collections.defaultdict(list)
    for s_, kind, page, url, _, title, brand, price, _, extra in m["sources"]:
        places[s_].append((page.removeprefix(site.base), url.removeprefix(site.base), title, brand, price,
                           json.loads(extra)))
    assert places[sha(img["/img/p1-large.jpg"])] == [
        ("/product/1", "/img/p1-large.jpg", "Runner One", "Acme", "89.95", {"currency": "EUR", "shop": "fixture"})]
    assert sorted(p[0] for p in places[sha(img["/img/shared.jpg"])]) == ["/product/1", "/product/2"]
    assert sorted(p[1] for p in places[sha(img["/img/p2.jpg"])]) == ["/img/p2-copy.jpg", "/img/p2.jpg"]
    assert places[sha(img["/img/p2.jpg"])][0][2:5] == ("Court Two", "Bolt", "120")
    assert places[sha(img["/img/flaky.jpg"])][0][2:5] == ("Six Hi", "Acme", "75")  # JSON-LD @graph

    # -- the same crawl, SIGKILLed while the 6th image download hangs, then run again -------------------
    site.reset()
    site.arm_gate(6)
    proc = subprocess.Popen(cli("shop", str(source), "--store", str(resumed), *FAST, *LIMITS), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while site.gated_path is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert site.gated_path is not None, "the crawl never reached the gate"
        time.sleep(1.0)  # let the responses before the gate reach the manifest
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        site.release()
    con = sqlite3.connect(resumed / "manifest.sqlite")
    done_before = con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    con.close()
    assert 0 < done_before < len(m["images"])  # really killed mid-way

    out = run_cli("shop", str(source), "--store", str(resumed), *FAST, *LIMITS)
    fetched, replayed = map(int, re.search(r"fetched (\d+) pages \((\d+) resumed", out.stdout).groups())
    assert replayed > 0 and fetched + replayed == 8  # recorded pages are replayed, not fetched again
    counts = fetched_counts(site.log)
    twice = {p: n for p, n in counts.items() if n > 1}
    assert twice == {site.gated_path: 2}  # only the download the kill interrupted
    assert not any(p.startswith("/private/") for p in counts)
    assert manifest(resumed) == m

    # -- a third run finds nothing to do --------------------------------------------------------------
    site.reset()
    run_cli("shop", str(source), "--store", str(resumed), *FAST, *LIMITS)
    assert set(site.paths()) <= {"/robots.txt"}  # 404s and oversized files are remembered too
    assert manifest(resumed) == m


def test_wayback_pages_and_images(site, tmp_path):
    store = tmp_path / "wb"
    site.reset()
    common = ["--domain", "oldshop.test", "--from", "2012", "--to", "2014-12-31", "--cdx-url",
              f"{site.base}/cdx/search/cdx", "--wayback-url", f"{site.base}/web", "--store", str(store),
              "--cdx-page-size", "1", *FAST]
    run_cli("wayback", *common)
    q = site.cdx_queries[0]
    assert q["collapse"] == ["urlkey"] and q["from"] == ["2012"] and q["to"] == ["20141231"]
    assert {"statuscode:200", "mimetype:text/html"} <= set(q["filter"]) and q["output"] == ["json"]
    assert [x.get("resumeKey") for x in site.cdx_queries] == [None, ["1"]]  # paged with resume keys
    paths = site.paths()
    assert "/web/20120101000000id_/http://oldshop.test/shoes/a.html" in paths
    assert "/web/20120305000000id_/http://oldshop.test/shoes/b.html" in paths
    assert not any(("c.html" in p or "gone.html" in p or "20130101" in p) for p in paths)  # date, status, collapse

    s = sqlite3.connect(store / "manifest.sqlite")
    a_sha = sha(site.captures[0].body)
    rows = s.execute("SELECT page_url, image_url, snapshot_time, extra FROM sources WHERE sha256 = ?"
                     " ORDER BY snapshot_time", (a_sha,)).fetchall()
    # the same archived photo on two archived pages: fetched in its original bytes, stored once, two places
    assert [(r[0], r[2]) for r in rows] == [("http://oldshop.test/shoes/a.html", "20120101000000"),
                                           ("http://oldshop.test/shoes/b.html", "20120305000000")]
    assert rows[0][1] == f"{site.base}/web/20120101000000id_/http://oldshop.test/img/a.jpg"
    assert json.loads(rows[0][3])["original_image_url"] == "http://oldshop.test/img/a.jpg"
    statuses = dict(s.execute("SELECT sha256, status FROM images").fetchall())
    assert statuses == {a_sha: "ok", sha(site.captures[1].body): "ok", sha(site.captures[2].body): "too_small"}
    assert s.execute("SELECT title FROM sources WHERE page_url LIKE '%b.html' LIMIT 1").fetchone() == ("Old B",)
    s.close()

    # images listed straight from the CDX index (image MIME types), each with its own capture time
    site.reset()
    run_cli("wayback", *common, "--images")
    assert any(f.startswith("mimetype:image/") for f in site.cdx_queries[0]["filter"])
    s = sqlite3.connect(store / "manifest.sqlite")
    snap = dict(s.execute("SELECT sha256, snapshot_time FROM sources WHERE page_url IS NULL").fetchall())
    s.close()
    assert snap == {sha(site.captures[1].body): "20120210000000", sha(site.captures[2].body): "20120101000000"}
    fetched = sorted(p for p in site.paths() if p.startswith("/web/"))
    # logo.png's snapshot URL was already fetched for page a (same timestamp): linked, not downloaded again
    assert fetched == ["/web/20120210000000id_/http://oldshop.test/img/b.png"]
    # a.jpg's only capture (2011-12-31) is before --from


def test_url_list_obeys_robots(site, tmp_path):
    store = tmp_path / "urls"
    lst = tmp_path / "list.csv"
    b = site.base
    lst.write_text(f"url,page_url,title\n{b}/img/p6.jpg,{b}/product/6,Six\n{b}/private/img/secret.jpg,,\n"
                   f"{b}/img/missing.jpg,,\n{b}/img/p2-copy.jpg,,\n{b}/img/p6.jpg,,\n")
    site.reset()
    out = run_cli("urls", str(lst), "--store", str(store), "--user-agent", "sneaker-test/1.0 (+me@example.com)",
                  *FAST)
    assert "2 new images" in out.stdout
    assert site.user_agents == {"sneaker-test/1.0 (+me@example.com)"}
    assert not any(p.startswith("/private/") for p in site.paths())
    assert collections.Counter(site.paths())["/img/p6.jpg"] == 1
    s = sqlite3.connect(store / "manifest.sqlite")
    assert s.execute("SELECT kind, page_url, title FROM sources WHERE sha256 = ?",
                     (sha(site.images["/img/p6.jpg"]),)).fetchall() == [("urls", f"{b}/product/6", "Six")]
    assert dict(s.execute("SELECT url, status FROM failures").fetchall()) == {
        f"{b}/private/img/secret.jpg": "robots_disallowed", f"{b}/img/missing.jpg": "http_404"}
    s.close()


def test_bad_source_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstart_urls: [ftp://nope]\n")
    r = subprocess.run(cli("shop", str(bad), "--store", str(tmp_path / "s")), cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: start URL 'ftp://nope' is not http(s)"]
