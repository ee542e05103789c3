"""`serve --model` refuses a model it could not serve (every image a 500, or one slider a 500) at start, with one
line, and writes nothing; a good model passes the same check."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from hostile import snapshot_tree  # noqa: E402

from sneakergan.cli import app  # noqa: E402
from sneakergan.edit.directions import DirectionSet, compute_directions, directions_path  # noqa: E402
from sneakergan.modelfile import ModelFileError, save_checkpoint  # noqa: E402
from sneakergan.nets import Generator, NetworkConfig  # noqa: E402
from sneakergan.serve.model_source import check_model, find_model  # noqa: E402

CFG = NetworkConfig(z_dim=16, w_dim=16, resolution=16, mapping_layers=2, channel_base=256, channel_max=16,
                    mbstd_group=2)


def _model(root: Path, name: str, cfg: NetworkConfig = CFG, directions: bool = True) -> Path:
    torch.manual_seed(0)
    G = Generator(cfg).eval()
    path = save_checkpoint(root / name, cfg, {"G_ema": G})
    if directions and not cfg.c_dim:
        ds = DirectionSet(model=name)
        ds.merge(compute_directions(G, "sefa", num=2, ranges=("coarse",), samples=64))
        ds.save(directions_path(path))
    return path


def _edit_directions(path: Path, change) -> None:
    dp = directions_path(path)
    body = json.loads(dp.read_text())
    change(body["directions"])
    dp.write_text(json.dumps(body))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-models")
    good = _model(root, "good")
    truncated = _model(root, "truncated")
    _edit_directions(truncated, lambda ds: ds[0].update(vector=ds[0]["vector"][:-1]))
    nan = _model(root, "nan")
    _edit_directions(nan, lambda ds: ds[1].update(sigma=float("nan")))
    bad_range = _model(root, "bad_range")
    _edit_directions(bad_range, lambda ds: ds[0].update(layers="0-40"))
    deep = _model(root, "deep")
    directions_path(deep).write_text("[" * 100_000 + "]" * 100_000)
    grey = _model(root, "grey", NetworkConfig(**{**CFG.to_dict(), "img_channels": 1}))
    cond = _model(root, "cond", NetworkConfig(**{**CFG.to_dict(), "c_dim": 3}))
    return root, {"good": good, "truncated": truncated, "nan": nan, "bad_range": bad_range, "deep": deep, "grey": grey,
                  "cond": cond}


@pytest.mark.parametrize("name, message", [
    ("truncated", "has 15 values; the model's w has 16"),
    ("nan", "sigma nan"),
    ("bad_range", "cannot render an image"),
    ("deep", "not a readable directions file"),
    ("grey", "1-channel images"),
    ("cond", "conditional model"),
])
def test_broken_models_are_refused_at_start(models, name, message):
    root, paths = models
    before = snapshot_tree(root)
    with pytest.raises(ModelFileError, match=message) as e:
        find_model(paths[name])
    assert "\n" not in str(e.value)
    assert snapshot_tree(root) == before


def test_good_model_passes_and_serve_cli_refuses_the_broken_one(models):
    root, paths = models
    check_model(paths["good"])
    assert find_model(paths["good"]).path == paths["good"]
    import socket

    with socket.socket() as s:  # a free port, so the refusal is the model's, not the port's
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = CliRunner().invoke(app, ["serve", "--model", str(paths["truncated"]), "--port", str(port)])
    assert r.exit_code == 2, r.output
    assert "has 15 values" in r.output and "Traceback" not in r.output


def test_directions_of_the_good_model_are_what_the_check_renders(models):
    _, paths = models
    ds = DirectionSet.load(directions_path(paths["good"]))
    assert len(ds) == 2 and all(np.asarray(d.vector).shape == (16,) for d in ds)
