"""The curate page's HTTP API (marks go to the manifest at once, survive a restart, undo) and one browser run."""

import io
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sneakergan.collect.store import Store
from sneakergan.prepare.boring import boringness, design_features
from sneakergan.prepare.curate import create_app
from sneakergan.prepare.synth import render_sneaker


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_store(root: Path, n: int = 6, prepared: bool = True) -> list[tuple[str, float]]:
    """A store with `n` synthetic sneakers; with `prepared`, also the prepare stage's table and PNGs.

    Returns [(sha256, boring)] in insertion order."""
    out = []
    with Store.open(root, create=True) as store:
        for i in range(n):
            img, _ = render_sneaker(100 + i, 96)
            rec = store.add_bytes(png_bytes(img), {"kind": "folder", "page_url": f"file:///{i}.png"})
            assert rec["status"] == "ok"
            out.append((rec["sha256"], boringness(design_features(img))))
    if prepared:
        (root / "prepared").mkdir(exist_ok=True)
        conn = sqlite3.connect(root / "manifest.sqlite")
        with conn:
            for sha, b in out:
                img = Image.open(Store.open(root).object_path(sha)).resize((64, 64))
                img.save(root / "prepared" / f"{sha}.png")
                conn.execute("INSERT INTO prepared (sha256, status, reason, boring, features, width, height) "
                             "VALUES (?, 'ok', NULL, ?, '{}', 64, 64)", (sha, b))
        conn.close()
    return out


@pytest.fixture()
def store_dir(tmp_path):
    root = tmp_path / "store"
    shas = make_store(root)
    return root, shas


def marks_in_manifest(root: Path) -> dict[str, str]:
    with Store.open(root, create=False) as s:
        return s.latest_marks()


def test_lists_prepared_images_by_boringness(store_dir):
    root, shas = store_dir
    with TestClient(create_app(root)) as client:
        data = client.get("/api/images").json()
        assert data["source"] == "prepared"
        assert data["total"] == len(shas) and data["counts"]["all"] == len(shas)
        got = [it["boring"] for it in data["items"]]
        assert got == sorted(got, reverse=True)
        assert {it["sha256"] for it in data["items"]} == {s for s, _ in shas}
        rev = client.get("/api/images", params={"order": "interesting"}).json()
        assert [it["sha256"] for it in rev["items"]] == [it["sha256"] for it in data["items"]][::-1]
        page = client.get("/api/images", params={"offset": 2, "limit": 2}).json()
        assert [it["sha256"] for it in page["items"]] == [it["sha256"] for it in data["items"][2:4]]
        img = client.get(data["items"][0]["url"])
        assert img.status_code == 200 and img.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(img.content)).size == (64, 64)
        page_html = client.get("/")
        assert page_html.status_code == 200 and "curate.js" in page_html.text
        assert client.get("/static/curate.js").status_code == 200


def test_marks_saved_at_once_and_survive_restart(store_dir):
    root, shas = store_dir
    a, b, c = shas[0][0], shas[1][0], shas[2][0]
    with TestClient(create_app(root)) as client:
        assert client.post("/api/mark", json={"sha256": a, "mark": "keep"}).json() == {"sha256": a, "mark": "keep"}
        client.post("/api/mark", json={"sha256": b, "mark": "reject"})
        client.post("/api/mark", json={"sha256": c, "mark": "favourite"})
        # In the manifest immediately, while the server still runs.
        assert marks_in_manifest(root) == {a: "keep", b: "reject", c: "favourite"}
    # A new app instance on the same store: the same marks, filters and counts.
    with TestClient(create_app(root)) as client:
        data = client.get("/api/images").json()
        assert data["counts"] == {"all": 6, "unmarked": 3, "keep": 1, "reject": 1, "favourite": 1}
        assert {it["sha256"]: it["mark"] for it in data["items"]}[b] == "reject"
        assert [it["sha256"] for it in client.get("/api/images?filter=keep").json()["items"]] == [a]
        assert [it["sha256"] for it in client.get("/api/images?filter=favourite").json()["items"]] == [c]
        unmarked = {it["sha256"] for it in client.get("/api/images?filter=unmarked").json()["items"]}
        assert unmarked == {s for s, _ in shas[3:]}


def test_undo(store_dir):
    root, shas = store_dir
    a = shas[0][0]
    with TestClient(create_app(root)) as client:
        client.post("/api/mark", json={"sha256": a, "mark": "keep"})
        client.post("/api/mark", json={"sha256": a, "mark": "reject"})
        assert client.post("/api/undo", json={"sha256": a}).json()["mark"] == "keep"
        assert marks_in_manifest(root)[a] == "keep"
        # The page sends the mark it saw before its action, so several undos walk back step by step.
        assert client.post("/api/undo", json={"sha256": a, "to": "clear"}).json()["mark"] is None
        assert a not in marks_in_manifest(root)
        assert client.get("/api/images?filter=unmarked").json()["total"] == 6


def test_bad_requests_are_4xx_and_change_nothing(store_dir):
    root, shas = store_dir
    a = shas[0][0]
    with TestClient(create_app(root)) as client:
        assert client.post("/api/mark", json={"sha256": a, "mark": "love"}).status_code == 422
        assert client.post("/api/mark", json={"sha256": "xyz", "mark": "keep"}).status_code == 422
        assert client.post("/api/mark", json={"sha256": "0" * 64, "mark": "keep"}).status_code == 404
        assert client.post("/api/mark", json={"mark": "keep"}).status_code == 422
        assert client.post("/api/undo", json={"sha256": "f" * 64}).status_code == 404
        assert client.post("/api/undo", json={"sha256": a, "to": "maybe"}).status_code == 422
        assert client.get("/api/images?filter=nope").status_code == 422
        assert client.get("/img/" + "0" * 64).status_code == 404
        assert client.get("/img/notasha").status_code == 422
    assert marks_in_manifest(root) == {}


def test_falls_back_to_raw_images_without_prepared_rows(tmp_path):
    root = tmp_path / "raw"
    shas = make_store(root, n=3, prepared=False)
    with TestClient(create_app(root)) as client:
        data = client.get("/api/images").json()
        assert data["source"] == "raw" and data["total"] == 3
        got = {it["sha256"]: it["boring"] for it in data["items"]}
        for sha, b in shas:  # the raw images are the rendered PNGs, scored the same way
            assert got[sha] == pytest.approx(b, abs=0.02)
        img = client.get(data["items"][0]["url"])
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
        assert client.post("/api/mark", json={"sha256": shas[0][0], "mark": "keep"}).status_code == 200
    assert marks_in_manifest(root) == {shas[0][0]: "keep"}


def test_missing_store_is_an_error(tmp_path):
    from sneakergan.collect.store import StoreError

    with pytest.raises(StoreError):
        create_app(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------------------------
# One real browser run

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.browser
def test_browser_keep_reject_undo(store_dir):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium not installed (make chromium)")
    import uvicorn
    from playwright.sync_api import expect, sync_playwright

    root, _ = store_dir
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(root), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            cards = page.locator(".card")
            expect(cards).to_have_count(6)
            order = [cards.nth(i).get_attribute("data-sha") for i in range(6)]
            expect(cards.nth(0)).to_have_class("card selected")

            # Fast input, no waiting in between: keep by key, reject by button, both reach the manifest in order.
            page.keyboard.press("k")
            page.click("#btn-reject")
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("k")  # the first card again: keep -> keep (the latest wins)
            expect(cards.nth(0)).to_have_attribute("data-mark", "keep")
            expect(cards.nth(1)).to_have_attribute("data-mark", "reject")
            cards.nth(4).click()
            page.keyboard.press("f")
            expect(cards.nth(4)).to_have_attribute("data-mark", "favourite")
            page.keyboard.press("u")  # undo the favourite
            expect(cards.nth(4)).to_have_attribute("data-mark", "")
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("r")
            expect(cards.nth(3)).to_have_attribute("data-mark", "reject")
            expect(page.locator('[data-count="reject"]')).to_have_text("2")
            # The status line shows the last answer; requests are sent in order, so all are saved now.
            expect(page.locator("#status")).to_have_text(f"reject: {order[3][:12]}")

            page.click('[data-filter="reject"]')
            expect(cards).to_have_count(2)
            browser.close()
        assert marks_in_manifest(root) == {order[0]: "keep", order[1]: "reject", order[3]: "reject"}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_cli_rejects_missing_store(tmp_path):
    from typer.testing import CliRunner

    from sneakergan.cli import app

    res = CliRunner().invoke(app, ["curate", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a store" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
