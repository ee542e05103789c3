"""The website in a real browser: Playwright drives Debian's chromium against `sneakergan serve` on 127.0.0.1.

Runs on the shipped demo model when the checkout has it (so screenshots show real sneakers), else on a random
`tiny` model, always with an empty gallery folder: nothing is pre-rendered, tiles are drawn on demand.
Screenshots go to a temporary folder; `make screenshots` sets SNEAKERGAN_SCREENSHOTS=docs/screenshots to refresh
the README's (the only way a test writes into the checkout).
"""

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--no-first-run"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START_LIMIT_S = 30  # "within a few seconds": measured ~5-9 s on 2 shared cores, including importing torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("SNEAKERGAN_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make chromium)")
    pytest.importorskip("playwright.sync_api")
    from sneakergan.serve.model_source import DEMO_NAME

    demo = ROOT / "models" / f"{DEMO_NAME}.safetensors"
    if demo.exists() and demo.with_suffix(".json").exists():
        model = demo
    else:
        from sneakergan.serve.model_source import build_random_tiny

        model = build_random_tiny(tmp_path_factory.mktemp("model") / "tiny")
    port = free_port()
    work = tmp_path_factory.mktemp("serve")
    log = open(work / "server.log", "w")
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "sneakergan.cli", "serve", "--model", str(model), "--port", str(port),
                             "--gallery", str(work / "gallery"), "--prerender", "0"],
                            cwd=work, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "SNEAKERGAN_CACHE": str(work / "cache")})
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{base}/", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() - t0 > 90:
            proc.kill()
            pytest.fail(f"server did not start: {(work / 'server.log').read_text()[-2000:]}")
        time.sleep(0.1)
    started = time.time() - t0
    yield {"url": base, "started_s": started, "gallery": work / "gallery"}
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.console_errors = errors
    yield pg
    ctx.close()


def image_loaded(page, selector: str) -> None:
    page.wait_for_function("sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0; }",
                           arg=selector, timeout=20000)


def image_bytes(page, selector: str) -> bytes:
    """The bytes behind an <img> as the browser has them (blob: or http: URL)."""
    data = page.evaluate("""async (sel) => {
        const r = await fetch(document.querySelector(sel).src);
        return Array.from(new Uint8Array(await r.arrayBuffer()));
    }""", selector)
    return bytes(data)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_site_answers_within_seconds_without_a_gallery(server):
    assert server["started_s"] < START_LIMIT_S, f"took {server['started_s']:.1f} s"
    assert not list(server["gallery"].glob("index.json"))  # nothing was pre-rendered
    print(f"site answered {server['started_s']:.1f} s after `serve` started")


def test_home_shows_a_sneaker_and_another_one_changes_it(server, page, shots):
    page.goto(server["url"] + "/")
    image_loaded(page, "#sneaker")
    first_src, first = page.get_attribute("#sneaker", "src"), image_bytes(page, "#sneaker")
    page.screenshot(path=str(shots / "home.png"))
    page.click("#another")
    page.wait_for_function(f"() => document.querySelector('#sneaker').getAttribute('src') !== '{first_src}'")
    image_loaded(page, "#sneaker")
    assert image_bytes(page, "#sneaker") != first
    seed = page.text_content("#seed")
    assert page.get_attribute("#permalink", "href") == f"/s/{seed}"
    page.click("#permalink")
    page.wait_for_url(f"**/s/{seed}")
    image_loaded(page, "#sneaker")
    page.click("#favourite")
    assert page.get_attribute("#favourite", "aria-pressed") == "true"
    page.goto(server["url"] + "/breed")
    page.wait_for_function("() => document.querySelectorAll('#favourites .child').length === 1")
    from sneakergan.edit.state import EditState

    assert EditState.decode(page.get_attribute("#favourites .child", "data-token")).seed == int(seed)
    assert page.console_errors == []  # the CSP blocks nothing the site itself needs


def test_gallery_tiles_and_permalinks_render_on_demand(server, page):
    page.goto(server["url"] + "/gallery")
    page.wait_for_function("() => document.querySelectorAll('#grid a').length >= 60")
    image_loaded(page, "#grid a img")
    tiles = list(server["gallery"].rglob("*.webp"))
    assert tiles, "no tile was rendered and kept"
    # A tile shows the whole sneaker: its box has the model's aspect ratio (a square crop cut off toes and heels).
    box = page.eval_on_selector("#grid a img",
                                "el => [el.clientWidth, el.clientHeight, el.naturalWidth, el.naturalHeight]")
    assert abs(box[0] / box[1] - box[2] / box[3]) < 0.05, box
    before = page.eval_on_selector_all("#grid a", "els => els.length")
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(f"() => document.querySelectorAll('#grid a').length > {before}", timeout=20000)
    seeds = page.eval_on_selector_all("#grid a", "els => els.map(a => a.getAttribute('href'))")
    assert len(set(seeds)) == len(seeds)  # pages do not repeat sneakers
    page.goto(server["url"] + "/s/3141592653")
    image_loaded(page, "#sneaker")
    assert page.evaluate("() => document.querySelector('#sneaker').naturalWidth") > 0


def test_editor_slider_share_link_and_downloads(server, page, browser, shots):
    page.goto(server["url"] + "/edit?seed=123")
    page.wait_for_url("**/edit?state=*")
    start_token = page.url.split("state=")[1]
    image_loaded(page, "#view")
    original = image_bytes(page, "#view")
    slider = page.locator("input[data-direction]").first
    assert slider.count() == 1, "the model has no visible directions to slide"
    slider.fill("3")  # fires input + change, as a drag does
    page.wait_for_function("() => document.querySelector('#view').src.startsWith('blob:')")
    image_loaded(page, "#view")
    edited = image_bytes(page, "#view")
    assert edited != original
    assert page.is_enabled("#undo")

    share = page.input_value("#share-url")
    assert share.startswith(server["url"] + "/edit?state=") and not share.endswith(start_token)
    token = share.split("state=")[1]
    with page.expect_download() as dl:
        page.click("#download")
    native = Path(dl.value.path()).read_bytes()
    assert native.startswith(PNG_MAGIC) and dl.value.suggested_filename == f"sneaker-{token}.png"
    with page.expect_download() as dl_big:
        page.click("#download-large")
    big = Image.open(io.BytesIO(Path(dl_big.value.path()).read_bytes()))
    assert big.width >= 1024 and dl_big.value.suggested_filename == f"sneaker-{token}-1024px-upscaled.png"
    assert "upscaled" in page.text_content("#download-large")
    page.screenshot(path=str(shots / "editor.png"), full_page=True)

    # A different person (fresh browser context, nothing cached) opens the link: same design, same bytes.
    ctx = browser.new_context(accept_downloads=True)
    other = ctx.new_page()
    other.goto(share)
    image_loaded(other, "#view")
    assert image_bytes(other, "#view") == edited
    assert other.input_value(f"input[data-direction='{slider.get_attribute('data-direction')}']") == "3"
    with other.expect_download() as dl2:
        other.click("#download")
    assert Path(dl2.value.path()).read_bytes() == native
    ctx.close()

    page.click("#undo")
    page.wait_for_function("() => document.querySelector('input[data-direction]').value === '0'")
    page.click("#compare")
    assert page.get_attribute("#compare", "aria-pressed") == "true"
    assert page.console_errors == []


def test_phone_keeps_the_sneaker_in_view_while_a_slider_moves(server, browser, shots):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    for path in ("/", "/gallery", "/breed?a=1&b=2"):
        pg.goto(server["url"] + path)
        width = pg.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
    pg.goto(server["url"] + "/edit?seed=5")
    image_loaded(pg, "#view")
    assert pg.evaluate("() => document.documentElement.scrollWidth") <= 390
    sliders = pg.locator("input[data-direction]")
    last = sliders.nth(sliders.count() - 1)
    last.scroll_into_view_if_needed()
    assert pg.evaluate("() => window.scrollY") > 200, "the editor fits without scrolling: nothing to test"
    box = last.bounding_box()
    pg.touchscreen.tap(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)  # move it with a finger
    pg.wait_for_function("() => document.querySelector('#view').src.startsWith('blob:')")
    image_loaded(pg, "#view")
    view = pg.locator("#view").bounding_box()
    assert view["y"] >= 0 and view["y"] + view["height"] <= 844 and view["height"] >= 150, view
    # Touch-sized controls.
    for sel in ("#undo", "#share", "#download", "#new-seed"):
        assert pg.locator(sel).bounding_box()["height"] >= 44, sel
    pg.screenshot(path=str(shots / "editor-phone.png"))
    ctx.close()


def test_crossbreeding_two_seeds_gives_children_that_open_in_the_editor(server, page, shots):
    page.goto(server["url"] + "/breed?a=11&b=22")
    page.wait_for_function("() => document.querySelectorAll('#children .child img').length === 6")
    for i in range(6):
        image_loaded(page, f"#children .child:nth-child({i + 1}) img")
    pa, pb = pixels(image_bytes(page, "#parent-a")), pixels(image_bytes(page, "#parent-b"))
    kids = [pixels(image_bytes(page, f"#children .child:nth-child({i + 1}) img")) for i in range(6)]
    for k in kids:
        assert not np.array_equal(k, pa) and not np.array_equal(k, pb)
    assert len({k.tobytes() for k in kids}) == 6
    page.screenshot(path=str(shots / "crossbreed.png"), full_page=True)

    # Favourite the third child; the shelf shows it and offers it as a parent.
    page.click("#children .child:nth-child(3) button.fav")
    page.wait_for_function("() => document.querySelectorAll('#favourites .child').length === 1")
    third = page.get_attribute("#children .child:nth-child(3)", "data-token")
    assert page.get_attribute("#favourites .child", "data-token") == third

    page.click("#children .child:nth-child(3) a.open")
    page.wait_for_url("**/edit?state=*")
    image_loaded(page, "#view")
    assert np.array_equal(pixels(image_bytes(page, "#view")), kids[2])  # same pixels in the editor
    assert page.is_visible("#cross-note")
    assert page.get_attribute("#favourite", "aria-pressed") == "true"
    slider = page.locator("input[data-direction]").first
    slider.fill("2")
    page.wait_for_function("() => document.querySelector('#view').src.startsWith('blob:')")
    image_loaded(page, "#view")
    assert not np.array_equal(pixels(image_bytes(page, "#view")), kids[2])  # a child edits like any design

    # A pasted permalink as parent B: new parent, new children.
    page.goto(server["url"] + "/breed?a=11&b=22")
    page.wait_for_function("() => document.querySelectorAll('#children .child img').length === 6")
    before = page.get_attribute("#children .child:nth-child(2)", "data-token")
    page.fill("#ref-b", server["url"] + "/s/33")
    page.click("[data-use='b']")
    page.wait_for_function("() => document.querySelector('#parent-b').getAttribute('src') === '/api/sneaker/33.webp'")
    page.wait_for_function(f"() => document.querySelector('#children .child:nth-child(2)').dataset.token !== '{before}'")
    assert "b=33" in page.url
    assert page.console_errors == []


def test_api_docs_render_with_the_network_blocked(server, page):
    local = server["url"]
    blocked: list[str] = []

    def only_local(route):
        if route.request.url.startswith(local):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_local)
    page.goto(local + "/")
    page.click("footer a[href='/docs']")
    page.wait_for_url("**/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
    assert "This Sneaker Does Not Exist" in page.text_content(".swagger-ui .info .title")
    page.locator(".opblock-summary-path", has_text="/api/breed").first.wait_for()
    assert blocked == [], f"the docs page reached outside: {blocked}"
    assert page.console_errors == []
