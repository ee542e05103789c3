"""The edit commands end to end on the imported reference fixture (a real StyleGAN2-ADA model with G, D, G_ema)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sneakergan.cli import app
from sneakergan.edit.state import EditState
from sneakergan.interop.nvlabs import import_snapshot

runner = CliRunner()
FIXTURE = Path(__file__).parent / "fixtures" / "nvlabs" / "nvlabs-tiny.pkl"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "ref"
    return import_snapshot(FIXTURE, out, ["G", "D", "G_ema"])


def run(*args):
    r = runner.invoke(app, [str(a) for a in args])
    return r


def ok(*args):
    r = run(*args)
    assert r.exit_code == 0, r.output
    return r


def assert_clean_error(r, text):
    assert r.exit_code == 2, r.output
    assert text in r.output and "Traceback" not in r.output, r.output


def test_directions_lifecycle(model, tmp_path):
    ok("directions", "compute", "--checkpoint", model, "--num", "3", "--samples", "500")
    ok("directions", "compute", "--checkpoint", model, "--method", "ganspace", "--num", "2", "--samples", "500")
    path = model.with_name("ref.directions.json")
    body = json.loads(path.read_text())
    ids = [d["id"] for d in body["directions"]]
    assert len(ids) == 14 and {"sefa_fine_0", "ganspace_1"} <= set(ids)
    d0 = body["directions"][0]
    assert {"id", "method", "name", "layers", "order", "hidden", "sigma", "vector"} <= set(d0)
    ok("directions", "name", "--model", model, "sefa_fine_0", "sole height")
    ok("directions", "hide", "--model", model, "sefa_all_2", "ganspace_1")
    ok("directions", "show-in-editor", "--model", model, "ganspace_1")
    ok("directions", "order", "--model", model, "ganspace_1", "sefa_fine_0")
    ok("directions", "range", "--model", model, "ganspace_0", "2-5")
    body = json.loads(path.read_text())
    by_id = {d["id"]: d for d in body["directions"]}
    assert by_id["sefa_fine_0"]["name"] == "sole height"
    assert by_id["sefa_all_2"]["hidden"] and not by_id["ganspace_1"]["hidden"]
    assert [d["id"] for d in body["directions"][:2]] == ["ganspace_1", "sefa_fine_0"]
    assert by_id["ganspace_0"]["layers"] == "2-5"
    listing = ok("directions", "list", "--checkpoint", model).output
    assert "sole height" in listing
    sheet = tmp_path / "sheet.png"
    ok("directions", "show", "--model", model, "sefa_fine_0", "--out", sheet, "--seeds", "0-1", "--amounts", "-3,0,3")
    assert Image.open(sheet).size == (3 * 34 + 2, 2 * 34 + 2)
    # recomputing keeps what people set
    ok("directions", "compute", "--checkpoint", model, "--num", "3", "--samples", "500")
    assert json.loads(path.read_text())["directions"][1]["name"] == "sole height"
    assert_clean_error(run("directions", "range", "--model", model, "ganspace_0", "3-40"), "out of bounds")
    assert_clean_error(run("directions", "range", "--model", model, "ganspace_0", "toes"), "unknown layer range")
    assert_clean_error(run("directions", "name", "--model", model, "nope", "x"), "unknown direction 'nope'")
    assert_clean_error(run("directions", "compute", "--checkpoint", model, "--method", "ica"), "unknown method")


def test_render_mix_interpolate_walk(model, tmp_path):
    token = EditState(model="ref", seed=5, psi=0.7, mixes=((9, "fine"),)).encode()
    ok("render", token, "--checkpoint", model, "--out", tmp_path / "r.png", "--size", "64")
    assert Image.open(tmp_path / "r.png").size == (64, 64)
    ok("mix", "--checkpoint", model, "--rows", "0-1", "--cols", "2-4", "--layers", "middle", "--out", tmp_path / "m.png")
    assert Image.open(tmp_path / "m.png").size == (4 * 34 + 2, 3 * 34 + 2)
    ok("interpolate", "--checkpoint", model, "--seeds", "1,2", "--frames", "4", "--out", tmp_path / "i.gif",
       "--size", "0")
    assert Image.open(tmp_path / "i.gif").n_frames == 4 and (tmp_path / "i.strip.png").exists()
    t2 = EditState(model="ref", seed=2).encode()
    ok("interpolate", token, t2, "--checkpoint", model, "--mode", "z", "--frames", "3", "--out", tmp_path / "i.mp4")
    assert (tmp_path / "i.mp4").stat().st_size > 0
    ok("walk", "--checkpoint", model, "--seed", "3", "--frames", "6", "--out", tmp_path / "w.gif", "--size", "64")
    assert Image.open(tmp_path / "w.gif").n_frames == 6
    assert_clean_error(run("render", "1.!!", "--checkpoint", model), "corrupt")
    assert_clean_error(run("render", EditState(model="ref", seed=1, mixes=((2, "0-9"),)).encode(),
                           "--checkpoint", model), "out of bounds")
    assert_clean_error(run("interpolate", "--checkpoint", model, "--seeds", "1"), "at least two")
    assert_clean_error(run("interpolate", "--checkpoint", model, "--seeds", "1,2", "--out", tmp_path / "x.avi"),
                       "must end in .gif or .mp4")
    assert_clean_error(run("mix", "--checkpoint", model, "--layers", "laces"), "mix layers 'laces'")
    assert_clean_error(run("walk", "--checkpoint", tmp_path / "none.safetensors", "--seed", "1"), "not found")


def test_project_saves_an_editable_latent(model, tmp_path):
    photo = tmp_path / "shoe.png"
    arr = np.full((120, 200, 3), 255, np.uint8)
    arr[40:90, 30:170] = (180, 40, 40)
    Image.fromarray(arr).save(photo)
    out = tmp_path / "proj"
    r = ok("project", photo, "--checkpoint", model, "--steps", "5", "--out", out)
    assert (out / "target.png").exists() and (out / "projected.png").exists()
    losses = json.loads((out / "losses.json").read_text())
    assert len(losses["error"]) == 5 and losses["d_loss"]  # the imported file holds D
    token = r.output.split("sneakergan render ")[1].split()[0]
    state = EditState.decode(token)
    assert state.latent and (model.with_name("ref.latents") / f"{state.latent}.safetensors").exists()
    ok("render", token, "--checkpoint", model, "--out", tmp_path / "lat.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "lat.png")), np.asarray(Image.open(out / "projected.png")))
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    assert_clean_error(run("project", tmp_path / "bad.jpg", "--checkpoint", model), "not an image")
    assert_clean_error(run("project", photo, "--checkpoint", model, "--lpips", tmp_path / "vgg.pth"), "not found")
