"""The website's newer parts through the test client: live gallery tiles and the idle filler, upscaled downloads,
crossbreeding, the one model id rule, sliders that do nothing left out, visitor-worded error pages, share links
from the configured address, offline API docs, security headers and HEAD."""

import io
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sneakergan.edit.directions import Direction, DirectionSet, compute_directions, directions_path
from sneakergan.edit.identity import model_id
from sneakergan.edit.render import model_id_for
from sneakergan.edit.state import Cross, EditState
from sneakergan.generate import load_generator
from sneakergan.serve.app import ServeConfig, create_app
from sneakergan.serve.engine import EngineConfig
from sneakergan.serve.model_source import build_random_tiny
from sneakergan.serve.security import SECURITY_HEADERS

PSI = 0.7


def make_model(stem: Path, dead: bool = False) -> Path:
    """A random `tiny` model with SeFa directions; `dead` adds a visible direction whose vector is all zeros."""
    path = build_random_tiny(stem)
    G = load_generator(path)
    dirs = DirectionSet(directions=compute_directions(G, "sefa", num=2, ranges=("coarse", "fine"), samples=300),
                        model=model_id(path))
    if dead:
        dirs.directions.append(Direction(id="dead_0", method="sefa", name="Does nothing", layers="all",
                                         vector=np.zeros(G.w_dim, np.float32), sigma=1.0, order=99))
    dirs.save(directions_path(path))
    return path


def site_config(root: Path, **kw) -> ServeConfig:
    return ServeConfig(engine=EngineConfig(psi=PSI, project_steps=3, latents_dir=root / "latents",
                                           gallery_dir=root / "gallery"), **kw)


def decode(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def wait_for(cond, timeout=30.0):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "my model", dead=True)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("site")


@pytest.fixture(scope="module")
def client(model, root, one_thread):
    with TestClient(create_app(model, site_config(root))) as c:
        yield c


@pytest.fixture(scope="module")
def engine(client):
    return client.app.state.site.engine


# ---- one model id ---------------------------------------------------------------------------------------------------
def test_one_model_id_rule_for_the_cli_and_the_site(client, engine, model):
    assert model_id("a/my model.safetensors") == model_id("a/my model.json") == model_id("a/my model") == "my-model"
    assert model_id("x/.hidden!.safetensors") == "hidden-" and model_id("x/!!!.safetensors") == "model"
    assert model_id_for(model) == engine.model_id == "my-model"
    # A design made by the CLI's rule opens on the site.
    token = EditState(model=model_id_for(model), seed=9, psi=PSI).encode()
    assert client.get(f"/edit?state={token}").status_code == 200


# ---- live gallery tiles ---------------------------------------------------------------------------------------------
def test_gallery_tiles_render_on_demand_and_are_kept(client, model, root):
    item = client.get("/api/gallery?page=0&size=3").json()["items"][0]
    assert item["seed"] == 0 and item["ready"] is False and item["prerendered"] is False
    r = client.get("/api/sneaker/0.webp")
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    tiles = list((root / "gallery" / "live").rglob("*.webp"))
    assert [p.name for p in tiles] == ["0000000.webp"] and tiles[0].read_bytes() == r.content
    assert client.get("/api/gallery?page=0&size=3").json()["items"][0]["ready"] is True
    assert client.get("/api/sneaker/3141592653.webp").status_code == 200  # a random home-page seed: not kept
    assert len(list((root / "gallery" / "live").rglob("*.webp"))) == 1
    # A restarted server serves the kept tile without rendering it again.
    with TestClient(create_app(model, site_config(root))) as c2:
        again = c2.get("/api/sneaker/0.webp")
        assert again.content == r.content and c2.get("/api/health").json()["pool"]["submitted"] == 0
    # Other psi, other folder: a kept tile never shows a picture the server would not draw.
    other = site_config(root).engine.__class__(psi=0.5, latents_dir=root / "latents", gallery_dir=root / "gallery")
    with TestClient(create_app(model, ServeConfig(engine=other))) as c3:
        assert c3.get("/api/gallery?page=0&size=1").json()["items"][0]["ready"] is False


def test_filler_renders_the_first_tiles_while_idle(model, tmp_path, one_thread):
    with TestClient(create_app(model, site_config(tmp_path, gallery_fill=10, fill_batch=4))) as c:
        wait_for(lambda: c.get("/api/health").json()["tiles"]["filled"] >= 10)
        items = c.get("/api/gallery?page=0&size=12").json()["items"]
        assert [i["ready"] for i in items] == [True] * 10 + [False] * 2
        site = c.app.state.site
        submitted = site.pool.stats.submitted
        tile = c.get("/api/sneaker/3.webp")
        assert site.pool.stats.submitted == submitted  # read from disk, not rendered
        fresh = site.engine.render_keys([(site.engine.seed_state(3), "webp", None)])[0]
        assert np.abs(decode(tile.content).astype(int) - decode(fresh)).max() <= 1


# ---- downloads ------------------------------------------------------------------------------------------------------
def test_large_download_is_a_labelled_lanczos_upscale_named_by_token(client, engine):
    native = client.get("/api/render.png?seed=3&download=true")
    token = native.headers["x-edit-state"]
    assert native.headers["content-disposition"] == f'attachment; filename="sneaker-{token}.png"'
    big = client.get("/api/render.png?seed=3&size=1024&download=true")
    assert big.status_code == 200 and big.headers["x-upscaled-from"] == f"{engine.width}x{engine.height}"
    assert big.headers["content-disposition"] == f'attachment; filename="sneaker-{token}-1024px-upscaled.png"'
    img = Image.open(io.BytesIO(big.content))
    assert img.size == (1024, 1024)
    expected = Image.fromarray(decode(native.content)).resize((1024, 1024), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(expected))
    assert big.headers["etag"] != native.headers["etag"]
    assert client.get("/api/render.png?seed=3&size=4096").status_code == 422
    assert "content-disposition" not in client.get("/api/render.png?seed=3").headers


# ---- crossbreeding --------------------------------------------------------------------------------------------------
def test_crossbreeding_two_seeds(client, engine):
    r = client.get("/api/breed?a=1&b=2&coarse=0.2&middle=0.5&fine=0.9&count=5")
    assert r.status_code == 200
    body = r.json()
    kids = body["children"]
    assert len(kids) == 5 and kids[0]["blend"] == {"coarse": 0.2, "middle": 0.5, "fine": 0.9}
    states = [EditState.decode(k["token"]) for k in kids]
    assert all(s.cross.a == engine.seed_state(1) and s.cross.b == engine.seed_state(2) for s in states)
    assert len({s.cross.blend for s in states}) == 5  # a row shows variety
    pa, pb = (decode(client.get(f"/api/sneaker/{s}.png").content) for s in (1, 2))
    for k in kids:
        img = decode(client.get(k["image"].replace(".webp", ".png")).content)
        assert not np.array_equal(img, pa) and not np.array_equal(img, pb)
        assert k["edit"] == f"/edit?state={k['token']}" and k["share"].endswith(k["edit"])
    assert client.get("/api/breed?a=1&b=2&coarse=0.2&middle=0.5&fine=0.9&count=5").json() == body  # deterministic
    assert client.get("/api/breed?a=1&b=2&row=1").json()["children"][1] != client.get(
        "/api/breed?a=1&b=2&row=0").json()["children"][1]
    # All of parent a, or all of parent b, draws that parent.
    for blend, parent in (("0", pa), ("1", pb)):
        k = client.get(f"/api/breed?a=1&b=2&coarse={blend}&middle={blend}&fine={blend}&count=1").json()
        assert np.array_equal(decode(client.get(k["children"][0]["image"].replace(".webp", ".png")).content), parent)


def test_children_open_in_the_editor_and_can_be_edited_and_bred_again(client, engine):
    child = client.get("/api/breed?a=5&b=6&count=1").json()["children"][0]["token"]
    page = client.get(f"/edit?state={child}")
    assert page.status_code == 200 and "A crossbred sneaker" in page.text
    d = engine.visible_directions()[0]["id"]
    edited = client.get(f"/api/render.png?cross={child}&edit={d}:2&mix=7:fine")
    assert edited.status_code == 200
    st = EditState.decode(edited.headers["x-edit-state"])
    assert st.cross == EditState.decode(child).cross and st.edits == ((d, 2.0),) and st.mixes == ((7, "fine"),)
    assert client.get(f"/api/render.png?cross={child}&edit={d}:2&before=true").content == \
        client.get(f"/api/render.png?state={child}").content
    # A child (or a share link to it) is a parent too; so is a projected photo's design.
    grand = client.get("/api/breed", params={"a": child, "b": f"http://x/edit?state={child}", "count": 2})
    assert grand.status_code == 200 and EditState.decode(grand.json()["children"][0]["token"]).generations == 2
    assert client.get(f"/breed?a={child}&b=3").status_code == 200
    by_link = client.get("/api/breed", params={"a": "https://x/s/5", "b": "6", "count": 1}).json()
    assert by_link["children"][0]["token"] == child  # a permalink names its seed


def test_crossbreeding_bad_parents(client):
    assert client.get("/api/breed?a=1").status_code == 422
    r = client.get("/api/breed?a=1&b=1.garbage")
    assert r.status_code == 400 and r.json()["error"].startswith("invalid edit state")
    other = EditState(model="other", seed=1, psi=PSI).encode()
    r = client.get(f"/api/breed?a=1&b={other}")
    assert r.status_code == 400 and "another" not in r.json()["error"] and "other" in r.json()["error"]
    assert client.get("/api/breed?a=1&b=2&coarse=1.5").status_code == 422
    assert client.get("/api/breed?a=1&b=2&count=99").status_code == 422
    assert client.get("/api/breed?a=99999999999&b=2").status_code == 400
    deep = EditState(model="my-model", seed=1, psi=PSI)
    for _ in range(4):
        deep = EditState(model="my-model", cross=Cross(deep, deep))
    r = client.get(f"/api/breed?a={deep.encode()}&b=2")
    assert r.status_code == 400 and "generations" in r.json()["error"]
    assert client.get(f"/breed?a={other}").status_code == 400


# ---- the editor leaves out sliders that do nothing ------------------------------------------------------------------
def test_a_direction_with_no_visible_effect_is_left_out(client, engine):
    wait_for(lambda: engine.effects is not None)
    assert engine.effects["dead_0"] == 0.0 and all(v > 0.5 for k, v in engine.effects.items() if k != "dead_0")
    ids = [d["id"] for d in client.get("/api/directions").json()["directions"]]
    assert "dead_0" not in ids and len(ids) == len(engine.directions.visible()) - 1
    assert 'data-direction="dead_0"' not in client.get("/edit?seed=1", follow_redirects=True).text
    assert client.get("/api/render.png?seed=1&edit=dead_0:2").status_code == 200  # old links still render


# ---- words, links, docs, headers ------------------------------------------------------------------------------------
def test_error_pages_speak_to_visitors(client):
    page = client.get("/edit?state=garbage")
    assert page.status_code == 400 and "This design link doesn" in page.text
    assert "VERSION.PAYLOAD" not in page.text and "invalid edit state" not in page.text
    api = client.get("/api/render.png?state=garbage")
    assert api.status_code == 400 and "VERSION.PAYLOAD" in api.json()["error"]  # API users get the precise reason
    other = client.get(f"/edit?state={EditState(model='other', seed=1).encode()}")
    assert other.status_code == 400 and "different sneaker model" in other.text
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "There is no page at this address" in missing.text
    assert client.get("/s/abc").status_code == 422 and "Traceback" not in client.get("/s/abc").text


def test_share_links_come_from_the_configured_address_not_the_host_header(model, root, client):
    evil = {"host": "evil.example"}
    assert client.get("/api/state?seed=1", headers=evil).json()["share"].startswith("http://testserver/edit?state=")
    cfg = site_config(root, base_url="https://sneakers.example/")
    with TestClient(create_app(model, cfg)) as c:
        assert c.get("/api/state?seed=1", headers=evil).json()["share"].startswith("https://sneakers.example/edit?")
        page = c.get("/edit?seed=1", headers=evil, follow_redirects=True).text
        assert 'value="https://sneakers.example/edit?state=' in page and "evil.example" not in page


def test_docs_are_served_from_this_server(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and "SwaggerUIBundle" in js.text[:2000]
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    assert client.get("/static/docs.js").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/breed", "/api/project", "/api/render.{fmt}"} <= set(paths)
    assert "multipart/form-data" in paths["/api/project"]["post"]["requestBody"]["content"]


@pytest.mark.parametrize("url", ["/", "/gallery", "/edit?seed=1", "/breed", "/docs", "/api/health",
                                 "/api/sneaker/1.webp", "/static/site.css", "/nothing-here", "/api/render.png?seed=x"])
def test_every_answer_carries_security_headers(client, url):
    r = client.get(url, follow_redirects=True)
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value, (url, name)
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_head_is_answered_wherever_get_is(client):
    for url in ("/", "/s/4", "/gallery", "/api/sneaker/1.webp", "/api/health", "/static/site.css", "/docs"):
        get, head = client.get(url), client.head(url)
        assert head.status_code == 200 and head.content == b"", url
        if "content-length" in get.headers and url != "/":  # the home page draws a new seed each time
            assert head.headers["content-length"] == get.headers["content-length"], url
    assert client.head("/api/project").status_code == 405
    assert client.head("/nope").status_code == 404


def test_serve_command_checks_the_base_url(model):
    from typer.testing import CliRunner

    from sneakergan.cli import app as cli_app

    r = CliRunner().invoke(cli_app, ["serve", "--model", str(model), "--base-url", "ftp://x"])
    assert r.exit_code == 2 and "--base-url" in r.output and "Traceback" not in r.output
