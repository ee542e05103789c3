"""The website in a real browser: Playwright drives Debian's chromium against `sneakergan serve` on 127.0.0.1.

Runs on the shipped demo model when the checkout has it (so the README screenshots show real sneakers), else on a
random `tiny` model. Saves docs/screenshots/home.png and docs/screenshots/editor.png.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--no-first-run"]
SHOTS = ROOT / "docs" / "screenshots"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make chromium)")
    pytest.importorskip("playwright.sync_api")
    demo = ROOT / "models" / "demo64.safetensors"
    if demo.exists() and (ROOT / "models" / "demo64.json").exists():
        model = demo
    else:
        from sneakergan.serve.model_source import build_random_tiny

        model = build_random_tiny(tmp_path_factory.mktemp("model") / "tiny")
    port = free_port()
    work = tmp_path_factory.mktemp("serve")
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "sneakergan.cli", "serve", "--model", str(model), "--port", str(port),
                             "--gallery", str(work / "gallery")],
                            cwd=work, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "SNEAKERGAN_CACHE": str(work / "cache")})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {(work / 'server.log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield base
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
    yield pg
    ctx.close()


def image_loaded(page, selector: str) -> None:
    page.wait_for_function("sel => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0; }",
                           arg=selector, timeout=15000)


def image_bytes(page, selector: str) -> bytes:
    """The bytes behind an <img> as the browser has them (blob: or http: URL)."""
    data = page.evaluate(f"""async () => {{
        const r = await fetch(document.querySelector('{selector}').src);
        return Array.from(new Uint8Array(await r.arrayBuffer()));
    }}""")
    return bytes(data)


def test_home_shows_a_sneaker_and_another_one_changes_it(server, page):
    page.goto(server + "/")
    image_loaded(page, "#sneaker")
    first_src, first = page.get_attribute("#sneaker", "src"), image_bytes(page, "#sneaker")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "home.png"))
    page.click("#another")
    page.wait_for_function(f"document.querySelector('#sneaker').getAttribute('src') !== '{first_src}'")
    image_loaded(page, "#sneaker")
    assert image_bytes(page, "#sneaker") != first
    seed = page.text_content("#seed")
    assert page.get_attribute("#permalink", "href") == f"/s/{seed}"
    page.click("#permalink")
    page.wait_for_url(f"**/s/{seed}")
    image_loaded(page, "#sneaker")


def test_gallery_loads_more_on_scroll(server, page):
    page.goto(server + "/gallery")
    page.wait_for_function("document.querySelectorAll('#grid a').length >= 60")
    before = page.eval_on_selector_all("#grid a", "els => els.length")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(f"document.querySelectorAll('#grid a').length > {before}", timeout=15000)
    image_loaded(page, "#grid a img")
    seeds = page.eval_on_selector_all("#grid a", "els => els.map(a => a.getAttribute('href'))")
    assert len(set(seeds)) == len(seeds)  # pages do not repeat sneakers


def test_editor_slider_share_link_and_download(server, page, browser):
    page.goto(server + "/edit?seed=123")
    page.wait_for_url("**/edit?state=*")
    start_token = page.url.split("state=")[1]
    image_loaded(page, "#view")
    original = image_bytes(page, "#view")
    slider = page.locator("input[data-direction]").first
    assert slider.count() == 1, "the model has no visible directions to slide"
    slider.fill("3")  # fires input + change, as a drag does
    page.wait_for_function("document.querySelector('#view').src.startsWith('blob:')")
    image_loaded(page, "#view")
    edited = image_bytes(page, "#view")
    assert edited != original
    assert page.is_enabled("#undo")

    share = page.input_value("#share-url")
    assert share.startswith(server + "/edit?state=") and not share.endswith(start_token)  # names the edited design
    with page.expect_download() as dl:
        page.click("#download")
    downloaded = Path(dl.value.path()).read_bytes()
    assert downloaded.startswith(PNG_MAGIC)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "editor.png"), full_page=True)

    # A different person (fresh browser context, nothing cached) opens the link: same design, same bytes.
    ctx = browser.new_context(accept_downloads=True)
    other = ctx.new_page()
    other.goto(share)
    image_loaded(other, "#view")
    assert image_bytes(other, "#view") == edited
    assert other.input_value(f"input[data-direction='{slider.get_attribute('data-direction')}']") == "3"
    with other.expect_download() as dl2:
        other.click("#download")
    assert Path(dl2.value.path()).read_bytes() == downloaded
    ctx.close()

    page.click("#undo")
    page.wait_for_function("document.querySelector('input[data-direction]').value === '0'")
    page.click("#compare")
    assert page.get_attribute("#compare", "aria-pressed") == "true"


def test_phone_layout_fits_the_screen(server, browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    for path in ("/", "/edit?seed=5", "/gallery"):
        pg.goto(server + path)
        width = pg.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
    ctx.close()
