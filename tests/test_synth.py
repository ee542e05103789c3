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


def test_families_materials_and_colourways_appear_in_their_shares(tmp_path):
    from sneakergan.prepare.synth import COLOURWAYS, FAMILY_TABLE, MATERIALS

    n = 600
    out = write_synth_dataset(tmp_path / "fam.zip", count=n, resolution=16, seed=5, aspect=(4, 3))
    with zipfile.ZipFile(out) as zf:
        info = json.loads(zf.read("params.json"))
    assert info["families"] == FAMILY_TABLE and (info["width"], info["height"]) == (16, 12)
    images = list(info["images"].values())
    for family, share in FAMILY_TABLE.items():
        seen = sum(p["family"] == family for p in images) / n
        assert abs(seen - share) < 0.05, (family, seen, share)
    assert {p["material"] for p in images} == set(MATERIALS)
    assert {p["colourway"] for p in images} == set(COLOURWAYS)
    assert {p["top"] for p in images} == {"low", "mid", "high"}


@pytest.mark.parametrize("aspect,size", [((4, 3), (128, 96)), ((1, 1), (96, 96)), ((3, 4), (72, 96))])
def test_canvas_aspect(aspect, size):
    res = max(size)
    for seed in range(6):
        img, _ = render_sneaker(seed, res, aspect)
        assert img.size == size
        arr = np.asarray(img)
        k = min(size) // 10
        for corner in (arr[:k, :k], arr[:k, -k:], arr[-k:, :k], arr[-k:, -k:]):
            assert (corner == 255).all()
        ys, xs = np.nonzero(foreground(img))
        assert xs.max() - xs.min() + 1 <= 0.92 * size[0] and ys.max() - ys.min() + 1 <= 0.95 * size[1]


def test_families_have_their_own_silhouettes():
    """Court high-tops stand taller than runners; dad shoes have the thickest soles; slip-ons have no laces."""
    def heights(family):
        out = []
        for seed in range(10):
            fg = foreground(render_sneaker(seed, 128, (4, 3), family=family)[0])
            ys, _ = np.nonzero(fg)
            out.append(ys.max() - ys.min())
        return np.mean(out)

    assert heights("court") > heights("runner") + 8
    soles = {f: np.mean([sum(render_sneaker(s, 16, family=f)[1][k] for k in ("midsole_h", "outsole_h"))
                         for s in range(20)]) for f in ("dad", "runner", "skate")}
    assert soles["dad"] > soles["runner"] and soles["dad"] > soles["skate"]
    assert not any(render_sneaker(s, 16, family="slipon")[1]["laces"] for s in range(10))
    from sneakergan.prepare.synth import FAMILIES, sample_params

    with pytest.raises(ValueError):
        sample_params(0, family="boot")
    assert {sample_params(s, family=f)["family"] for f in FAMILIES for s in range(2)} == set(FAMILIES)


def test_soft_shading_and_ground_shadow():
    """Not flat fills: a one-colour leather upper has many tones, lighter at the top; a grey shadow lies under it."""
    from sneakergan.prepare.synth import render_params, sample_params

    p = sample_params(3, family="court")
    p = dict(p, material="leather", pattern="none", logo="none", toe_cap=False, heel_counter=False, eyestay=False,
             mudguard=False, ankle_strap=False, perforations=False)
    p["colors"] = dict(p["colors"], base="#3a62b8")
    arr = np.asarray(render_params(p, 128, (4, 3))).astype(int)
    blue = (arr[..., 2] > arr[..., 0] + 60)
    ys, xs = np.nonzero(blue)
    tones = {tuple(v) for v in arr[blue]}
    assert len(tones) > 40
    upper_half = arr[blue & (np.arange(arr.shape[0])[:, None] < np.median(ys))].mean()
    lower_half = arr[blue & (np.arange(arr.shape[0])[:, None] >= np.median(ys))].mean()
    assert upper_half > lower_half + 3
    fg = foreground(Image.fromarray(arr.astype(np.uint8)))
    bottom = np.nonzero(fg.any(axis=1))[0].max()
    below = arr[bottom - 1: bottom + 1, arr.shape[1] // 3: 2 * arr.shape[1] // 3]
    grey = (below.max(axis=2) - below.min(axis=2) < 12) & (below.min(axis=2) < 250) & (below.min(axis=2) > 170)
    assert grey.mean() > 0.3  # the shadow's soft grey, not the sole's colour
