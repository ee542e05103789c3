"""The website's API and pages through FastAPI's test client: every endpoint with good and bad input, caching
headers, the gallery, projection jobs, load shedding, the model lookup, and a fuzz of the render endpoint."""

import asyncio
import io
import json
import re
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from sneakergan.cli import app as cli_app
from sneakergan.edit.directions import DirectionSet, compute_directions, directions_path
from sneakergan.edit.render import Renderer
from sneakergan.edit.state import EditState
from sneakergan.generate import load_generator
from sneakergan.serve.app import ServeConfig, create_app
from sneakergan.serve.cache import BytesLRU
from sneakergan.serve.engine import EngineConfig
from sneakergan.serve.gallery import load_index
from sneakergan.serve.model_source import DEMO_NAME, ModelSource, build_random_tiny, find_model
from sneakergan.serve.pool import BatchPool, Overloaded, PoolConfig

PSI = 0.7


def make_model(stem, hidden: bool = True):
    """A random `tiny` model with SeFa directions on disk (one of them hidden)."""
    path = build_random_tiny(stem)
    G = load_generator(path)
    dirs = DirectionSet(directions=compute_directions(G, "sefa", num=2, ranges=("coarse", "fine"), samples=500),
                        model="m")
    if hidden:
        dirs.directions[-1].hidden = True
    dirs.save(directions_path(path))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    return ServeConfig(engine=EngineConfig(psi=PSI, project_steps=3, latents_dir=root / "latents",
                                           gallery_dir=root / "gallery"))


@pytest.fixture(scope="module")
def client(model, config):
    with TestClient(create_app(model, config)) as c:
        yield c


@pytest.fixture(scope="module")
def engine(client):
    return client.app.state.engine


def decode(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


def seed_of_home(html: str) -> int:
    return int(re.search(r'src="/api/sneaker/(\d+)\.webp"', html).group(1))


# ---- pages ----------------------------------------------------------------------------------------------------------
def test_home_shows_a_fresh_seed_each_visit(client):
    pages = [client.get("/") for _ in range(3)]
    assert all(p.status_code == 200 and p.headers["content-type"].startswith("text/html") for p in pages)
    seeds = {seed_of_home(p.text) for p in pages}
    assert len(seeds) == 3 and all(0 <= s < 2**32 for s in seeds)
    assert 'id="another"' in pages[0].text and 'id="permalink"' in pages[0].text and "/edit?seed=" in pages[0].text
    assert pages[0].headers["cache-control"] == "no-store"
    assert 'id="banner"' not in pages[0].text  # a real model file was given: no fallback banner


def test_permalink_page_and_bad_seeds(client):
    r = client.get("/s/12345")
    assert r.status_code == 200 and seed_of_home(r.text) == 12345
    for bad in ("/s/-1", "/s/4294967296", "/s/abc"):
        r = client.get(bad)
        assert r.status_code == 422 and "seed" in r.text and "Traceback" not in r.text


def test_gallery_page(client):
    r = client.get("/gallery")
    assert r.status_code == 200 and 'id="grid"' in r.text and "/static/gallery.js" in r.text


def test_editor_page(client, engine):
    r = client.get("/edit?seed=42", follow_redirects=False)
    assert r.status_code == 303
    token = r.headers["location"].split("state=")[1]
    assert EditState.decode(token) == EditState(model=engine.model_id, seed=42, psi=PSI)
    page = client.get(r.headers["location"])
    assert page.status_code == 200
    visible = [d.id for d in engine.directions.visible()]
    hidden = [d.id for d in engine.directions if d.hidden]
    assert visible and hidden
    for did in visible:
        assert f'data-direction="{did}"' in page.text
    assert f'data-direction="{hidden[0]}"' not in page.text
    for level in ("coarse", "middle", "fine"):
        assert f'data-mix="{level}"' in page.text
    data = json.loads(re.search(r'<script type="application/json" id="editor-data">(.*?)</script>', page.text, re.S)
                      .group(1))
    assert data["token"] == token and data["state"]["seed"] == 42
    assert client.get("/edit").status_code == 200  # a random sneaker, after a redirect


def test_editor_rejects_bad_tokens_with_a_page(client):
    for bad in ("nonsense", "1.!!!", "9.abc", "1." + "A" * 5000):
        r = client.get(f"/edit?state={bad}")
        assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("text/html")


def test_unknown_routes_are_404(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    r = client.get("/api/nope")
    assert r.status_code == 404 and r.json()["error"]
    assert client.get("/static/nope.js").status_code == 404


def test_fallback_banner_is_shown(model, config):
    src = ModelSource(model, banner="No trained demo model found: serving a random model.")
    with TestClient(create_app(config=config, source=src)) as c:
        assert 'id="banner"' in c.get("/").text and "No trained demo model" in c.get("/gallery").text
        assert c.get("/api/health").json()["fallback"] is True


# ---- images ---------------------------------------------------------------------------------------------------------
def test_sneaker_image_matches_the_renderer(client, engine, model):
    r = client.get("/api/sneaker/7.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = decode(r.content)
    assert img.shape == (engine.height, engine.width, 3)
    own = Renderer.from_model(model, model_id=engine.model_id).render(EditState(model=engine.model_id, seed=7, psi=PSI))
    assert np.abs(img.astype(int) - own).max() <= 1  # 1/255: float round-off between batch sizes
    webp = client.get("/api/sneaker/7.webp")
    assert webp.headers["content-type"] == "image/webp" and decode(webp.content).shape == img.shape
    assert not np.array_equal(decode(client.get("/api/sneaker/8.png").content), img)


def test_images_are_cacheable(client):
    r = client.get("/api/sneaker/99.webp")
    etag = r.headers["etag"]
    assert re.fullmatch(r'W/"[0-9a-f]{32}"', etag)  # weak: equal pictures, float round-off aside
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = client.get("/api/sneaker/99.webp")
    assert again.headers["etag"] == etag and again.content == r.content
    assert client.get("/api/sneaker/99.png").headers["etag"] != etag
    assert client.get("/api/sneaker/100.webp").headers["etag"] != etag
    nm = client.get("/api/sneaker/99.webp", headers={"If-None-Match": etag})
    assert nm.status_code == 304 and nm.content == b"" and nm.headers["etag"] == etag
    assert client.get("/api/sneaker/99.webp", headers={"If-None-Match": '"other"'}).status_code == 200
    before = client.get("/api/health").json()["cache"]["hits"]
    client.get("/api/sneaker/99.webp")
    assert client.get("/api/health").json()["cache"]["hits"] == before + 1


def test_render_by_params_and_by_token_agree(client, engine):
    vis = engine.directions.visible()
    q = f"seed=5&psi=0.8&edit={vis[0].id}:1.5&mix=11:coarse"
    r = client.get(f"/api/render.png?{q}")
    assert r.status_code == 200
    token = r.headers["x-edit-state"]
    st_ = EditState.decode(token)
    assert st_ == EditState(model=engine.model_id, seed=5, psi=0.8, edits=((vis[0].id, 1.5),), mixes=((11, "coarse"),))
    by_token = client.get(f"/api/render.png?state={token}")
    assert by_token.content == r.content and by_token.headers["etag"] == r.headers["etag"]
    assert client.get(f"/api/render?state={token}").content == r.content  # /api/render = .png
    plain = client.get("/api/render.png?seed=5&psi=0.8")
    assert decode(plain.content).tolist() != decode(r.content).tolist()  # the edit and the mix change the sneaker
    before = client.get(f"/api/render.png?{q}&before=true")
    assert before.content == plain.content
    info = client.get(f"/api/state?{q}").json()
    assert info["token"] == token and info["png"] == f"/api/render.png?state={token}" and "edit?state=" in info["share"]


def test_hidden_directions_still_render(client, engine):
    hidden = [d.id for d in engine.directions if d.hidden][0]
    assert client.get(f"/api/render.webp?seed=1&edit={hidden}:2").status_code == 200


@pytest.mark.parametrize("url, status, words", [
    ("/api/sneaker/-1.png", 422, "seed"),
    ("/api/sneaker/4294967296.webp", 422, "seed"),
    ("/api/sneaker/abc.png", 422, "seed"),
    ("/api/sneaker/1.gif", 422, "fmt"),
    ("/api/render.png", 400, "seed"),
    ("/api/render.png?state=garbage", 400, "token"),
    ("/api/render.png?state=1.AAAA", 400, "corrupt"),
    ("/api/render.png?seed=1&psi=nan", 400, "psi"),
    ("/api/render.png?seed=1&psi=1e308", 400, "psi"),
    ("/api/render.png?seed=1&psi=abc", 422, "psi"),
    ("/api/render.png?seed=1&edit=nope:1", 400, "unknown direction"),
    ("/api/render.png?seed=1&edit=sefa_coarse_0:99", 400, "sigma"),
    ("/api/render.png?seed=1&edit=sefa_coarse_0", 400, "DIRECTION:AMOUNT"),
    ("/api/render.png?seed=1&edit=sefa_coarse_0:inf", 400, "finite"),
    ("/api/render.png?seed=1" + "&edit=sefa_coarse_0:1" * 17, 400, "too many edits"),
    ("/api/render.png?seed=1&mix=7:sideways", 400, "layers"),
    ("/api/render.png?seed=1&mix=x:coarse", 400, "SEED:LAYERS"),
    ("/api/render.png?seed=1&mix=4294967296:coarse", 400, "range"),
    ("/api/render.png?seed=1&mix=1:0-40", 400, "out of bounds"),
    ("/api/render.png?seed=1" + "&mix=1:fine" * 5, 400, "too many"),
    ("/api/render.png?seed=1&latent=pnope", 400, "latent"),
    ("/api/render.png?latent=../../etc", 400, "latent"),
    ("/api/render.png?state=1.WyJ0aW55IiwxXQ&seed=3", 400, "not both"),
    ("/api/render.webp?state=" + EditState(model="other", seed=1).encode(), 400, "model"),
    ("/api/gallery?page=-1", 422, "page"),
    ("/api/gallery?size=0", 422, "size"),
    ("/api/gallery?size=10000", 422, "size"),
    ("/api/project/doesnotexist", 404, "no projection job"),
])
def test_bad_input_gets_a_clear_4xx(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert words.lower() in r.json()["error"].lower()


# ---- JSON API -------------------------------------------------------------------------------------------------------
def test_directions_api(client, engine):
    d = client.get("/api/directions").json()
    assert [x["id"] for x in d["directions"]] == [x.id for x in engine.directions.visible()]
    assert all(x["max"] == 5.0 and x["name"] for x in d["directions"])
    assert d["limits"]["mix_levels"] == ["coarse", "middle", "fine"] and d["limits"]["max_edits"] == 16


def test_openapi_describes_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/sneaker/{seed}.{fmt}", "/api/render.{fmt}", "/api/render", "/api/directions", "/api/gallery",
              "/api/project", "/api/project/{job}", "/api/state", "/api/health"):
        assert p in paths, p


def test_gallery_api_without_an_index_walks_the_seeds(client):
    p0 = client.get("/api/gallery?page=0&size=5").json()
    assert [i["seed"] for i in p0["items"]] == [0, 1, 2, 3, 4] and p0["next"] == 1
    p2 = client.get("/api/gallery?page=2&size=5").json()
    assert [i["seed"] for i in p2["items"]] == [10, 11, 12, 13, 14]
    assert p2["items"][0] == {"seed": 10, "image": "/api/sneaker/10.webp", "permalink": "/s/10", "prerendered": False,
                              "ready": False}
    assert client.get("/api/gallery").json()["size"] == 60
    last = client.get(f"/api/gallery?page={2**32 // 200 - 1}&size=200").json()
    assert last["items"][-1]["seed"] <= 2**32 - 1


def test_gallery_build_and_serving_prerendered_files(model, config, tmp_path):
    runner = CliRunner()
    out = tmp_path / "gal"
    r = runner.invoke(cli_app, ["gallery", "build", "--count", "6", "--start", "3", "--model", str(model),
                                "--out", str(out), "--psi", str(PSI), "--batch", "4"])
    assert r.exit_code == 0, r.output
    idx = load_index(out)
    assert idx.seeds == [3, 4, 5, 6, 7, 8] and idx.psi == PSI
    files = {s: idx.path(s) for s in idx.seeds}
    assert all(p.exists() and decode(p.read_bytes()).shape == (32, 32, 3) for p in files.values())
    mtime = files[3].stat().st_mtime_ns
    r = runner.invoke(cli_app, ["gallery", "build", "--count", "8", "--start", "3", "--model", str(model),
                                "--out", str(out), "--psi", str(PSI)])
    assert r.exit_code == 0 and len(load_index(out).seeds) == 8 and files[3].stat().st_mtime_ns == mtime  # resumed

    cfg = ServeConfig(engine=EngineConfig(psi=PSI, gallery_dir=out, latents_dir=config.engine.latents_dir))
    with TestClient(create_app(model, cfg)) as c:
        assert c.get("/api/health").json()["gallery"] == 8
        page = c.get("/api/gallery?page=0&size=5").json()
        assert [i["seed"] for i in page["items"]] == [3, 4, 5, 6, 7] and all(i["prerendered"] for i in page["items"])
        page = c.get("/api/gallery?page=1&size=5").json()
        assert [i["seed"] for i in page["items"]] == [8, 9, 10, 0, 1]
        assert [i["prerendered"] for i in page["items"]] == [True, True, True, False, False]
        assert [i["seed"] for i in c.get("/api/gallery?page=2&size=5").json()["items"]] == [2, 11, 12, 13, 14]
        before = c.get("/api/health").json()["pool"]["submitted"]
        r = c.get("/api/sneaker/4.webp")
        assert r.content == files[4].read_bytes()
        assert c.get("/api/health").json()["pool"]["submitted"] == before  # no render needed
        assert "8 pre-rendered" in c.get("/gallery").text
    # An index made at another truncation does not describe what the server draws: ignored.
    cfg = ServeConfig(engine=EngineConfig(psi=0.5, gallery_dir=out, latents_dir=config.engine.latents_dir))
    with TestClient(create_app(model, cfg)) as c:
        assert c.get("/api/health").json()["gallery"] == 0


def test_gallery_build_bad_input(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli_app, ["gallery", "build", "--count", "3", "--model", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no such model" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli_app, ["gallery", "build", "--count", "0"])
    assert r.exit_code == 2


def test_serve_command_bad_input(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli_app, ["serve", "--model", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no such model" in r.output
    r = runner.invoke(cli_app, ["serve", "--psi", "9"])
    assert r.exit_code == 2 and "--psi" in r.output


# ---- projection -----------------------------------------------------------------------------------------------------
def png_bytes(size=(48, 40), color=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_projection_job_from_upload_to_editor(client, engine):
    r = client.post("/api/project", files={"file": ("shoe.png", png_bytes(), "image/png")})
    assert r.status_code == 202 and r.json()["steps"] == 3
    job = r.json()["job"]
    first = client.get(f"/api/project/{job}").json()
    assert first["steps"] == 3  # the real step count from the first poll on, never "step 0 of 0"
    deadline = time.time() + 60
    while True:
        s = client.get(f"/api/project/{job}").json()
        assert s["status"] in ("queued", "running", "done"), s["error"]
        if s["status"] == "done":
            break
        assert time.time() < deadline
        time.sleep(0.1)
    assert s["progress"] == 1.0 and s["step"] == s["steps"] == 3
    state = EditState.decode(s["result"]["state"])
    assert state.latent == s["result"]["latent"] and state.seed is None
    img = client.get(f"/api/render.png?state={s['result']['state']}")
    assert img.status_code == 200 and decode(img.content).shape == (32, 32, 3)
    vis = engine.directions.visible()[0].id
    assert client.get(f"/api/render.webp?latent={state.latent}&edit={vis}:2").status_code == 200
    assert client.get(f"/edit?state={s['result']['state']}").status_code == 200


def test_projection_rejects_bad_uploads(client):
    r = client.post("/api/project", files={"file": ("x.png", b"this is not an image", "image/png")})
    assert r.status_code == 415 and "not a PNG, JPEG or WebP" in r.json()["error"]
    r = client.post("/api/project", files={"file": ("x.png", png_bytes()[:60], "image/png")})
    assert r.status_code == 400
    r = client.post("/api/project", files={"file": ("x.png", b"", "image/png")})
    assert r.status_code == 400
    r = client.post("/api/project", files={"file": ("x.png", b"\0" * (10 * 2**20 + 1), "image/png")})
    assert r.status_code == 413 and "10 MB" in r.json()["error"]
    bomb = io.BytesIO()
    Image.new("1", (10000, 10000)).save(bomb, "PNG")  # 100 Mpx that compress to a few kB
    assert len(bomb.getvalue()) < 2**20
    r = client.post("/api/project", files={"file": ("bomb.png", bomb.getvalue(), "image/png")})
    assert r.status_code == 413 and "megapixels" in r.json()["error"]
    assert client.post("/api/project").status_code == 415  # no multipart body at all


# ---- load shedding, batching, caches --------------------------------------------------------------------------------
def test_server_sheds_load_with_503_and_keeps_serving_pages(model, config):
    gate = threading.Event()
    cfg = ServeConfig(engine=config.engine, pool=PoolConfig(max_batch=2, max_wait_ms=1, max_queue=3))
    app = create_app(model, cfg)
    slow = app.state.engine.render_keys

    def blocked(keys):
        gate.wait(10)
        return slow(keys)

    app.state.pool.fn = blocked

    async def scenario():
        await app.state.pool.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                renders = [asyncio.create_task(c.get(f"/api/sneaker/{s}.png")) for s in range(1000, 1008)]
                await asyncio.sleep(0.3)
                page = await c.get("/gallery")  # answered while renders queue
                health = (await c.get("/api/health")).json()
                gate.set()
                results = await asyncio.gather(*renders)
            return page, health, results
        finally:
            await app.state.pool.close()

    page, health, results = asyncio.run(scenario())
    assert page.status_code == 200 and health["pool"]["pending"] == 3
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 3 and codes.count(503) == 5
    shed = [r for r in results if r.status_code == 503]
    assert all(int(r.headers["retry-after"]) >= 1 and "busy" in r.json()["error"] for r in shed)


def test_pool_batches_dedupes_and_skips_cancelled():
    calls = []

    def fn(keys):
        calls.append(list(keys))
        return [ValueError("bad key") if k == 666 else k * 10 for k in keys]

    async def scenario():
        pool = BatchPool(fn, PoolConfig(max_batch=8, max_wait_ms=20, max_queue=100))
        await pool.start()
        try:
            futs = [pool.submit_future(k) for k in (1, 2, 2, 3)]
            gone = pool.submit_future(4)
            gone.cancel()  # its client left before the batch started
            values = await asyncio.gather(*futs)
            bad, good = await asyncio.gather(pool.submit(666), pool.submit(5), return_exceptions=True)
            assert isinstance(bad, ValueError) and good == 50  # a bad key fails alone, not its batch-mates
            many = await asyncio.gather(*[pool.submit(k) for k in range(20)])
            return values, many, pool.stats, pool.pending
        finally:
            await pool.close()

    values, many, stats, pending = asyncio.run(scenario())
    assert values == [10, 20, 20, 30] and many == [k * 10 for k in range(20)]
    assert calls[0] == [1, 2, 3]  # one batch, duplicates rendered once, the cancelled key skipped
    assert calls[1] == [666, 5]
    assert all(len(c) <= 8 for c in calls) and len(calls) == 2 + 3  # 20 keys in batches of at most 8
    assert stats.skipped == 1 and pending == 0


def test_pool_rejects_when_full_and_reports_errors():
    async def scenario():
        gate = asyncio.Event()
        loop = asyncio.get_running_loop()

        def fn(keys):
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
            if 13 in keys:
                raise RuntimeError("boom")
            return keys

        pool = BatchPool(fn, PoolConfig(max_batch=1, max_wait_ms=0, max_queue=2))
        await pool.start()
        try:
            a, b = pool.submit_future(1), pool.submit_future(13)
            with pytest.raises(Overloaded):
                pool.submit_future(3)
            gate.set()
            assert await a == 1
            with pytest.raises(RuntimeError, match="boom"):
                await b
            assert await pool.submit(4) == 4  # the batcher survived the failure
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_job_runner_reports_progress_failures_and_sheds_load():
    from sneakergan.serve.jobs import JobRunner

    gate = threading.Event()

    def fn(payload, progress):
        for i in range(3):
            progress(i + 1, 3)
        gate.wait(5)
        if payload == "bad":
            raise ValueError("the photo is too small")
        return {"echo": payload}

    runner = JobRunner(fn, max_pending=1)
    try:
        job = runner.submit("ok")
        with pytest.raises(Overloaded):
            runner.submit("more")
        gate.set()
        deadline = time.time() + 5
        while runner.get(job.id).status != "done":
            assert time.time() < deadline
            time.sleep(0.01)
        assert runner.get(job.id).to_json() | {"job": None} == {
            "job": None, "status": "done", "progress": 1.0, "step": 3, "steps": 3, "phase": "", "result": {"echo": "ok"},
            "error": None}
        bad = runner.submit("bad")
        while runner.get(bad.id).status not in ("done", "failed"):
            time.sleep(0.01)
        assert runner.get(bad.id).status == "failed" and runner.get(bad.id).error == "the photo is too small"
        assert runner.get("unknown") is None
    finally:
        runner.close()


def test_bytes_lru_evicts_least_recently_used():
    c = BytesLRU(max_bytes=10)
    c.put("a", b"1234")
    c.put("b", b"5678")
    assert c.get("a") == b"1234"  # a is now the most recent
    c.put("c", b"90")
    c.put("d", b"xy")  # over 10 bytes: b goes first
    assert c.get("b") is None and c.get("a") == b"1234" and c.size <= 10
    c.put("huge", b"x" * 11)
    assert c.get("huge") is None and len(c) == 3


# ---- the model lookup -----------------------------------------------------------------------------------------------
def test_find_model_prefers_the_demo_model(tmp_path, model):
    models, cache, runs = tmp_path / "models", tmp_path / "cache", tmp_path / "runs"
    assert find_model(model, models, cache, runs) == ModelSource(model)
    build_random_tiny(runs / DEMO_NAME / "snapshot-000010")
    (runs / DEMO_NAME / "junk.safetensors").write_bytes(b"not a model")
    src = find_model(None, models, cache, runs)
    assert src.path == runs / DEMO_NAME / "snapshot-000010.safetensors" and "training snapshot" in src.banner
    build_random_tiny(models / "demo-old")
    src = find_model(None, models, cache, runs)
    assert src.path.name == "demo-old.safetensors" and DEMO_NAME in src.banner
    build_random_tiny(models / DEMO_NAME)
    assert find_model(None, models, cache, runs) == ModelSource(models / f"{DEMO_NAME}.safetensors")


def test_find_model_falls_back_once_to_a_cached_model(tmp_path):
    src = find_model(None, tmp_path / "empty", tmp_path / "cache", tmp_path / "no-runs")
    assert src.is_fallback and "No trained demo model" in src.banner and src.path.exists()
    assert src.path.parent == tmp_path / "cache"
    mtime = src.path.stat().st_mtime_ns
    again = find_model(None, tmp_path / "empty", tmp_path / "cache", tmp_path / "no-runs")
    assert again == src and again.path.stat().st_mtime_ns == mtime  # built once, reused
    # The fallback serves (directions computed at start-up, since it has no directions file).
    with TestClient(create_app(source=src)) as c:
        assert 'id="banner"' in c.get("/").text
        assert c.get("/api/sneaker/1.png").status_code == 200
        assert c.get("/api/directions").json()["directions"]


# ---- fuzz -----------------------------------------------------------------------------------------------------------
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
amount = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-10, 10).map(str), text)
direction = st.sampled_from(["sefa_coarse_0", "sefa_coarse_1", "sefa_fine_0", "sefa_fine_1", "nope"]) | text
token = st.one_of(text, st.builds(lambda s: "1." + s, text),
                  st.builds(lambda seed, psi: EditState(model="m", seed=seed, psi=psi).encode(),
                            st.integers(0, 2**32 - 1), st.floats(-1, 2)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=st.sampled_from(["png", "webp", "gif", "PNG", ""]),
    state=st.none() | token,
    seed=st.none() | st.integers(-(2**40), 2**40).map(str) | text,
    psi=st.none() | amount,
    edits=st.lists(st.builds(lambda d, a: f"{d}:{a}", direction, amount) | text, max_size=20),
    mixes=st.lists(st.builds(lambda s, l: f"{s}:{l}", st.integers(-5, 2**33), st.sampled_from(
        ["coarse", "middle", "fine", "all", "0-3", "5-2", "0-99", "x"])) | text, max_size=6),
    before=st.none() | st.sampled_from(["true", "false", "maybe"]),
)
def test_fuzz_render_endpoint_never_5xx(client, fmt, state, seed, psi, edits, mixes, before):
    params = [(k, v) for k, v in (("state", state), ("seed", seed), ("psi", psi), ("before", before)) if v is not None]
    params += [("edit", e) for e in edits] + [("mix", m) for m in mixes]
    r = client.get(f"/api/render.{fmt}" if fmt else "/api/render", params=params)
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code == 200:
        assert r.headers["content-type"] in ("image/png", "image/webp") and decode(r.content).shape == (32, 32, 3)
    else:
        assert r.headers["content-type"] == "application/json" and r.json()["error"]


def test_serve_command_refuses_a_taken_port(model):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = CliRunner().invoke(cli_app, ["serve", "--model", str(model), "--port", str(port)])
    assert r.exit_code == 2 and "cannot listen" in r.output and "Traceback" not in r.output
