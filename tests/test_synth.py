"""Synthetic sneakers: deterministic, white background, a shoe-sized foreground, varied colours, dataset layout."""

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from sneakergan.prepare.synth import dataset_path, render_sneaker, write_synth_dataset


def foreground(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB")).min(axis=2) < 245


def test_same_seed_same_image_and_params():
    a, pa = render_sneaker(3, 64)
    b, pb = render_sneaker(3, 64)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert pa == pb
    c, pc = render_sneaker(4, 64)
    assert pc != pa
    assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("resolution", [64, 128])
def test_white_corners_and_centred_shoe(resolution):
    for seed in range(12):
        img, _ = render_sneaker(seed, resolution)
        assert img.size == (resolution, resolution) and img.mode == "RGB"
        arr = np.asarray(img)
        k = resolution // 8
        for corner in (arr[:k, :k], arr[:k, -k:], arr[-k:, :k], arr[-k:, -k:]):
            assert (corner == 255).all()
        fg = foreground(img)
        ys, xs = np.nonzero(fg)
        width = (xs.max() - xs.min() + 1) / resolution
        height = (ys.max() - ys.min() + 1) / resolution
        assert 0.7 <= width <= 0.92, width  # ~80% of the width
        assert 0.25 <= height <= 0.7, height  # a side view: wider than tall
        assert abs((xs.max() + xs.min()) / 2 - resolution / 2) <= resolution * 0.06
        assert abs((ys.max() + ys.min()) / 2 - resolution / 2) <= resolution * 0.08
        assert 0.15 <= fg.mean() <= 0.6


def test_toe_points_left():
    """The toe end is lower than the heel end: more foreground in the right third's top half than the left's."""
    for seed in range(12):
        fg = foreground(render_sneaker(seed, 128)[0])
        ys, xs = np.nonzero(fg)
        top = ys.min()
        left_top = ys[xs < xs.min() + 15].min()
        right_top = ys[xs > xs.max() - 25].min()
        assert right_top < left_top, seed  # heel collar is higher than the toe
        assert top < left_top


def test_colours_vary_across_seeds():
    means = []
    for seed in range(24):
        arr = np.asarray(render_sneaker(seed, 64)[0]).reshape(-1, 3).astype(float)
        fg = arr[arr.min(axis=1) < 245]
        means.append(fg.mean(axis=0))
    means = np.array(means)
    assert means.std(axis=0).min() > 20  # mean foreground colour spreads on every channel
    hues = {render_sneaker(s, 32)[1]["scheme"] for s in range(24)}
    assert len(hues) >= 4


def test_high_and_low_tops_differ_in_height():
    heights = {"low": [], "high": []}
    for seed in range(60):
        img, p = render_sneaker(seed, 64)
        if p["top"] in heights:
            ys, _ = np.nonzero(foreground(img))
            heights[p["top"]].append(ys.max() - ys.min())
    assert heights["low"] and heights["high"]
    assert np.mean(heights["high"]) > np.mean(heights["low"]) + 5


def test_zip_layout_labels_and_params(tmp_path):
    out = write_synth_dataset(tmp_path / "d.zip", count=5, resolution=32, seed=1, labels=True)
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        pngs = sorted(n for n in names if n.endswith(".png"))
        assert pngs == [dataset_path(i) for i in range(5)] == [f"00000/img0000000{i}.png" for i in range(5)]
        labels = json.loads(zf.read("dataset.json"))["labels"]
        params = json.loads(zf.read("params.json"))
        img = Image.open(io.BytesIO(zf.read(pngs[2])))
        assert img.size == (32, 32) and img.mode == "RGB"
    assert [row[0] for row in labels] == pngs
    assert all(row[1] in (0, 1, 2) for row in labels)
    assert params["seed"] == 1 and params["resolution"] == 32
    assert set(params["images"]) == set(pngs)
    assert [params["images"][p]["label"] for p in pngs] == [row[1] for row in labels]
    # The saved parameters reproduce the image.
    p2 = params["images"][pngs[2]]
    again, p_again = render_sneaker(p2["seed"], 32)
    assert p_again == p2
    assert np.array_equal(np.asarray(again), np.asarray(img))


def test_folder_layout_without_labels_is_deterministic(tmp_path):
    a = write_synth_dataset(tmp_path / "a", count=3, resolution=16, seed=5, zip=False)
    b = write_synth_dataset(tmp_path / "b", count=3, resolution=16, seed=5, zip=False)
    c = write_synth_dataset(tmp_path / "c", count=3, resolution=16, seed=6, zip=False)
    assert json.loads((a / "dataset.json").read_text()) == {"labels": None}
    assert (a / "params.json").exists()
    for i in range(3):
        rel = dataset_path(i)
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
        assert (a / rel).read_bytes() != (c / rel).read_bytes()


def test_bad_arguments():
    with pytest.raises(ValueError):
        render_sneaker(0, 4)
    with pytest.raises(ValueError):
        write_synth_dataset("unused.zip", count=0, resolution=16)


def test_cli_writes_zip_and_rejects_bad_input(tmp_path):
    import typer
    from typer.testing import CliRunner

    from sneakergan.prepare import commands

    app = typer.Typer()
    app.callback()(lambda: None)  # a group, as in the real CLI with several stages
    commands.register(app)
    runner = CliRunner()
    out = tmp_path / "s.zip"
    res = runner.invoke(app, ["synth", "--count", "4", "--resolution", "16", "--out", str(out), "--labels"])
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(out) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".png")]) == 4
        assert len(json.loads(zf.read("dataset.json"))["labels"]) == 4
    res = runner.invoke(app, ["synth", "--count", "0", "--out", str(tmp_path / "x.zip")])
    assert res.exit_code == 2 and "Traceback" not in res.output
