"""One CLI convention across the stages: `--model` takes a model file, a checkpoint or a run folder; user mistakes
end in one `error:` line and exit 2; `export` never replaces a model silently; directions belong to their weights;
tables are not cut when piped."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sneakergan.cli import app
from sneakergan.edit.directions import DirectionSet, directions_path
from sneakergan.edit.state import EditState
from sneakergan.modelfile import model_paths, read_meta, save_checkpoint
from sneakergan.nets import Discriminator, Generator, NetworkConfig

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")

CFG = NetworkConfig(z_dim=16, w_dim=16, resolution=16, mapping_layers=2, channel_base=256, channel_max=16)


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: object):
    r = run(*args)
    assert r.exit_code == 0, r.output
    return r


def one_line_error(r, *needles: str) -> str:
    """Assert a user mistake: exit 2 and exactly one line, `error: ...`, naming what is wrong."""
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], r.output
    return lines[0]


def nets(seed: int, cfg: NetworkConfig = CFG) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    return Generator(cfg).eval(), Discriminator(cfg).eval()


@pytest.fixture(scope="module")
def forms(tmp_path_factory) -> dict[str, Path]:
    """The same kind of model in the three forms `--model` takes: an exported file, a checkpoint, a run folder."""
    root = tmp_path_factory.mktemp("forms")
    G, D = nets(0)
    save_checkpoint(root / "exported", CFG, {"G_ema": G})
    run_dir = root / "run"
    save_checkpoint(run_dir / "snapshot-000000", CFG, {"G": G, "D": D, "G_ema": G}, state={"kimg": 0.0})
    for src, dst in zip(model_paths(run_dir / "snapshot-000000"), model_paths(run_dir / "checkpoint-latest")):
        shutil.copyfile(src, dst)
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(data / f"{i}.png")
    return {"file": root / "exported.safetensors", "checkpoint": run_dir / "snapshot-000000", "run": run_dir,
            "data": data}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


COMMANDS = {
    "generate": lambda m, t: ["generate", "--model", m, "--seeds", "0-1", "--out", t / "g"],
    "export": lambda m, t: ["export", "--model", m, "--out", t / "e"],
    "directions compute": lambda m, t: ["directions", "compute", "--model", m, "--num", "2", "--samples", "100",
                                        "--layers", "all"],
    "mix": lambda m, t: ["mix", "--model", m, "--rows", "0", "--cols", "1", "--out", t / "mix.png"],
    "render": lambda m, t: ["render", EditState(model="x", seed=3).encode(), "--model", m, "--out", t / "r.png"],
    "interpolate": lambda m, t: ["interpolate", "--model", m, "--seeds", "1,2", "--frames", "2", "--out", t / "i.gif"],
    "walk": lambda m, t: ["walk", "--model", m, "--seed", "1", "--frames", "2", "--out", t / "w.gif"],
    "gallery build": lambda m, t: ["gallery", "build", "--model", m, "--count", "2", "--out", t / "gal",
                                   "--device", "cpu"],
}


@pytest.mark.parametrize("form", ["file", "checkpoint", "run"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_model_reader_takes_all_three_forms(forms, tmp_path, form, command):
    ok(*COMMANDS[command](forms[form], tmp_path))


@pytest.mark.parametrize("form", ["file", "checkpoint", "run"])
def test_directions_list_metrics_and_serve_take_all_three_forms(forms, tmp_path, form, monkeypatch):
    import uvicorn

    m = forms[form]
    ok("directions", "compute", "--checkpoint", m, "--num", "2", "--samples", "100", "--layers", "all")
    assert "sefa_all_0" in ok("directions", "list", "--model", m).output
    r = ok("metrics", "--model", m, "--data", forms["data"], "--metrics", "kid50k_full", "--num", "8",
           "--extractor", "random-tiny", "--device", "cpu", "--cache-dir", tmp_path / "cache")
    assert "kid50k_full" in r.output
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda a, **kw: served.update(app=a, **kw))
    ok("serve", "--model", m, "--port", _free_port(), "--device", "cpu")
    assert served["host"] == "127.0.0.1" and served["app"].state.engine.G.img_width == 16


def test_project_takes_a_run_folder(forms, tmp_path):
    photo = tmp_path / "shoe.png"
    arr = np.full((60, 100, 3), 255, np.uint8)
    arr[20:45, 15:85] = (180, 40, 40)
    Image.fromarray(arr).save(photo)
    r = ok("project", photo, "--model", forms["run"], "--steps", "1", "--out", tmp_path / "p", "--no-noise")
    assert "--model" in r.output and (tmp_path / "p" / "projected.png").exists()


def test_a_folder_without_checkpoints_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(run("generate", "--model", tmp_path / "empty", "--out", tmp_path / "o"), "no checkpoint")


def test_user_mistakes_in_every_stage_are_one_line_exit_2(forms, tmp_path):
    (tmp_path / "afile.txt").write_text("x")
    m = forms["file"]
    fresh = tmp_path / "fresh"
    save_checkpoint(fresh, CFG, {"G_ema": nets(3)[0]})
    cases = [
        (["collect", "status", tmp_path / "nostore"], "nostore"),
        (["collect", "folder", tmp_path / "nophotos", "--store", tmp_path / "s"], "nophotos"),
        (["synth", "--out", tmp_path / "afile.txt", "--count", "1"], "not a folder"),
        (["prepare", tmp_path / "nostore", "--out", tmp_path / "d.zip"], "not a store"),
        (["prepare", tmp_path / "nostore", "--out", tmp_path / "d.zip", "--resolution", "100"], "power of two"),
        (["curate", tmp_path / "nostore"], "not a store"),
        (["train", "--data", tmp_path / "nodata", "--out", tmp_path / "run", "--preset", "tiny", "--kimg", "1"],
         "nodata"),
        (["train", "--out", tmp_path / "run"], "--data"),
        (["finetune", "--from", tmp_path / "nomodel", "--data", forms["data"], "--kimg", "1", "--out", tmp_path / "r"],
         "nomodel"),
        (["plot", tmp_path / "norun"], "norun"),
        (["generate", "--model", m, "--psi", "5", "--out", tmp_path / "g"], "--psi"),
        (["generate", "--model", m, "--seeds", "9-1", "--out", tmp_path / "g"], "backwards"),
        (["generate", "--model", tmp_path / "nomodel"], "not found"),
        (["generate"], "--model"),
        (["import", tmp_path / "none.pkl", "--out", tmp_path / "imp"], "none.pkl"),
        (["export", "--model", tmp_path / "nomodel", "--out", tmp_path / "e"], "not found"),
        (["directions", "list", "--model", fresh], "no directions"),
        (["directions", "name", "x", "y", "--model", tmp_path / "nomodel"], "not found"),
        (["mix", "--model", m, "--psi", "-3"], "--psi"),
        (["interpolate", "--model", m, "--seeds", "1,2", "--out", tmp_path / "x.avi"], ".gif or .mp4"),
        (["walk", "--model", m, "--seed", "1", "--radius", "9"], "--radius"),
        (["render", "1.!!", "--model", m], "corrupt"),
        (["metrics", "--model", m, "--data", forms["data"], "--metrics", "fid1k_nope"], "--metrics"),
        (["serve", "--model", tmp_path / "nomodel"], "not found"),
        (["serve", "--psi", "2.5"], "--psi"),
        (["gallery", "build", "--model", m, "--count", "0"], "--count"),
        (["presets", "--nope"], "--nope"),
        (["no-such-command"], "no-such-command"),
    ]
    for argv, needle in cases:
        one_line_error(run(*argv), needle)
    assert not (tmp_path / "g").exists()  # out-of-range psi was refused before any work


def test_unexpected_errors_keep_their_traceback(monkeypatch, tmp_path, forms):
    import sneakergan.generate

    def broken(*a, **kw):
        raise RuntimeError("a bug, not a user mistake")

    monkeypatch.setattr(sneakergan.generate, "load_generator", broken)
    r = run("generate", "--model", forms["file"], "--out", tmp_path / "g")
    assert r.exit_code != 2 and isinstance(r.exception, RuntimeError)


def test_help_shows_the_shared_defaults():
    for argv in (["generate"], ["mix"], ["interpolate"], ["walk"], ["directions", "show"], ["serve"],
                 ["gallery", "build"]):
        text = " ".join(run(*argv, "--help").output.split())
        assert "--model" in text and "--psi" in text and "[default: 0.7]" in text, (argv, text)
    assert "psi 1" in " ".join(run("metrics", "--help").output.split())


def test_export_refuses_to_overwrite_without_force(forms, tmp_path):
    out = tmp_path / "served"
    ok("export", "--model", forms["run"], "--out", out)
    before = [p.read_bytes() for p in model_paths(out)]
    G2, D2 = nets(1)
    save_checkpoint(tmp_path / "other", CFG, {"G_ema": G2})
    one_line_error(run("export", "--model", tmp_path / "other", "--out", out), "--force")
    assert [p.read_bytes() for p in model_paths(out)] == before
    one_line_error(run("import", REPO / "tests" / "fixtures" / "nvlabs" / "nvlabs-tiny.pkl", "--out", out), "--force")
    assert [p.read_bytes() for p in model_paths(out)] == before
    ok("export", "--model", tmp_path / "other", "--out", out, "--force")
    assert read_meta(out)["weights"]["sha256"] == read_meta(tmp_path / "other")["weights"]["sha256"]


def test_directions_from_other_weights_are_ignored(tmp_path):
    G1, _ = nets(1)
    G2, _ = nets(2)
    model = tmp_path / "m"
    save_checkpoint(model, CFG, {"G_ema": G1})
    ok("directions", "compute", "--model", model, "--num", "2", "--samples", "100", "--layers", "all")
    ok("directions", "name", "sefa_all_0", "sole height", "--model", model)
    body = json.loads(directions_path(model).read_text())
    assert body["weights_sha256"] == read_meta(model)["weights"]["sha256"]
    token = EditState(model="m", seed=1, edits=(("sefa_all_0", 2.0),)).encode()
    ok("render", token, "--model", model, "--out", tmp_path / "edited.png")

    save_checkpoint(tmp_path / "m2", CFG, {"G_ema": G2})
    ok("export", "--model", tmp_path / "m2", "--out", model, "--force")  # new weights, old directions file
    assert len(DirectionSet.for_model(model)) == 0
    warned = []
    assert len(DirectionSet.for_model(model, warn=warned.append)) == 0 and "other weights" in warned[0]
    r = ok("mix", "--model", model, "--rows", "0", "--cols", "1", "--out", tmp_path / "mix.png")
    assert "other weights" in " ".join(r.output.split())
    r = run("render", token, "--model", model, "--out", tmp_path / "stale.png")
    warning, error = r.output.strip().splitlines()  # why the direction is gone, then the one error line
    assert r.exit_code == 2 and "other weights" in warning and error.startswith("error: ") and "sefa_all_0" in error
    one_line_error(run("directions", "list", "--model", model), "other weights")

    from sneakergan.serve.engine import Engine, EngineConfig
    from sneakergan.serve.model_source import ModelSource

    engine = Engine.load(ModelSource(model_paths(model)[0]), EngineConfig(device="cpu", direction_samples=200))
    assert "other weights" in engine.directions_note
    assert "sole height" not in [d["name"] for d in engine.visible_directions()]
    import uvicorn

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(uvicorn, "run", lambda *a, **kw: None)
        r = ok("serve", "--model", model, "--port", _free_port(), "--device", "cpu")
    assert "warning" in r.output and "other weights" in " ".join(r.output.split())

    ok("directions", "compute", "--model", model, "--num", "2", "--samples", "100", "--layers", "all")
    fresh = DirectionSet.for_model(model)
    assert len(fresh) == 2 and fresh.weights_sha256 == read_meta(model)["weights"]["sha256"]
    assert "sole height" not in [d.name for d in fresh]  # names given to other weights' directions are not kept


def test_piped_tables_are_not_cut(tmp_path):
    env = {**os.environ, "COLUMNS": "80"}  # what CI runners and test harnesses set
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "sneakergan.cli", "presets"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120, check=True).stdout
    assert "24,767,458" in out and "24,001,089" in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) > 80  # the table kept its natural width


def test_directions_list_keeps_long_names_whole(tmp_path):
    model = tmp_path / "m"
    save_checkpoint(model, CFG, {"G_ema": nets(0)[0]})
    ok("directions", "compute", "--model", model, "--num", "1", "--samples", "100", "--layers", "all")
    name = "sole height and a very long description of what it does"
    ok("directions", "name", "sefa_all_0", name, "--model", model)
    out = ok("directions", "list", "--model", model).output
    assert name in out and "…" not in out
