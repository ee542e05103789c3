"""`sneakergan prepare` end to end: a small store with duplicates and bad inputs -> zip, report, manifest."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from test_prepare import draw_shoe, encode  # noqa: E402

from sneakergan.cli import app  # noqa: E402
from sneakergan.collect.store import Store  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A store of 17 'ok' images: 9 distinct shoes, 5 near-copies of them, 3 that prepare must reject."""
    from sneakergan.prepare.synth import render_sneaker

    root = tmp_path_factory.mktemp("prep") / "store"
    shas: dict[str, str] = {}
    with Store.open(root) as st:
        def add(name: str, data: bytes) -> None:
            rec = st.add_bytes(data, {"kind": "folder", "image_url": f"test://{name}"})
            assert rec["status"] == "ok", (name, rec)
            shas[name] = rec["sha256"]

        shoes = [render_sneaker(seed, 384)[0] for seed in range(6)]
        for k, img in enumerate(shoes):
            add(f"synth{k}", encode(img, "JPEG", quality=92))
        add("synth0_half", encode(shoes[0].resize((192, 192), Image.Resampling.BILINEAR), "PNG"))
        add("synth0_jpeg40", encode(shoes[0], "JPEG", quality=40))
        add("synth1_crop", encode(shoes[1].crop((14, 20, 372, 376)), "JPEG", quality=70))
        add("synth2_flipped", encode(shoes[2].transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG", quality=80))
        add("cmyk", encode(draw_shoe(upper=(200, 30, 30)).convert("CMYK"), "JPEG", quality=95))
        alpha = draw_shoe(upper=(30, 60, 200)).convert("RGBA")
        arr = np.asarray(alpha).copy()
        arr[(arr[..., :3] >= 250).all(axis=2), 3] = 0  # transparent background
        add("alpha", encode(Image.fromarray(arr, "RGBA"), "PNG"))
        grey = draw_shoe(upper=(40, 150, 60), stripe=(250, 250, 250)).convert("L")
        add("grey16", encode(Image.fromarray(np.asarray(grey).astype(np.uint16) * 257), "PNG"))
        add("grey8", encode(grey, "JPEG", quality=90))
        add("tiny", encode(draw_shoe(size=(120, 90), box=(10, 20, 110, 70)), "PNG"))
        pair = Image.new("RGB", (1000, 400), "white")
        pair.paste(draw_shoe(size=(480, 300), box=(20, 60, 460, 280)), (0, 50))
        pair.paste(draw_shoe(size=(480, 300), box=(20, 60, 460, 280), upper=(20, 120, 40)), (500, 50))
        add("pair", encode(pair, "PNG"))
        add("corrupt", encode(draw_shoe(upper=(90, 90, 20)), "JPEG"))
        path = st.object_path(shas["corrupt"])
        path.write_bytes(path.read_bytes()[:2000])  # damaged on disk after it was collected
    return {"root": root, "sha": shas}


def run(*args: object):
    return runner.invoke(app, ["prepare", *map(str, args)])


def flat(output: str) -> str:
    """The output with Rich's error-box borders and line wrapping removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def read_zip(path: Path) -> tuple[list[str], dict, list[Image.Image]]:
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        meta = json.loads(zf.read("dataset.json"))
        images = [Image.open(io.BytesIO(zf.read(n))) for n in names]
    return names, meta, images


def prepared_rows(root: Path) -> dict[str, tuple]:
    with sqlite3.connect(root / "manifest.sqlite") as conn:
        return {r[0]: r[1:] for r in conn.execute("SELECT sha256, status, reason, boring, features, silhouette"
                                                  " FROM prepared")}


def test_prepare_end_to_end(store, tmp_path):
    root, sha = store["root"], store["sha"]
    out = tmp_path / "ds.zip"
    r = run(root, "--out", out, "--resolution", 128, "--keep-boring", "--labels", "silhouette", "--workers", 2)
    assert r.exit_code == 0, r.output
    assert "kept" in r.output and "duplicate" in r.output

    names, meta, images = read_zip(out)
    assert len(names) == 9
    assert names[0] == "00000/img00000000.png" and names[-1] == "00000/img00000008.png"
    assert all(im.size == (128, 128) and im.mode == "RGB" for im in images)
    assert [n for n, _ in meta["labels"]] == names
    assert all(isinstance(c, int) and c >= 0 for _, c in meta["labels"])

    report = json.loads((tmp_path / "ds.report.json").read_text())
    assert report["counts"] == {"kept": 9, "decode_error": 1, "too_small": 1, "several_objects": 1,
                                "duplicate": 5}
    exported = {s for _, s, _ in report["images"]}
    for name in ("synth0", "synth1", "synth2", "synth3", "synth4", "synth5", "cmyk", "alpha"):
        assert sha[name] in exported, name
    assert len(exported & {sha["grey16"], sha["grey8"]}) == 1   # two encodings of one grey shoe
    assert sha["synth0_half"] not in exported and sha["synth2_flipped"] not in exported
    for sheet in ("ds.kept.png", "ds.rejected.png"):
        assert Image.open(tmp_path / sheet).size[0] > 100

    rows = prepared_rows(root)
    assert len(rows) == 17
    assert rows[sha["corrupt"]][0] == "decode_error" and rows[sha["tiny"]][0] == "too_small"
    assert rows[sha["synth0_jpeg40"]][0] == "duplicate" and sha["synth0"][:12] in rows[sha["synth0_jpeg40"]][1]
    flipped = json.loads(rows[sha["synth2_flipped"]][3])["prepare"]
    assert flipped["flipped"] and flipped["facing"] == "right"
    assert rows[sha["synth0"]][4] is not None  # silhouette group
    assert all(0.0 <= row[2] <= 1.0 for row in rows.values() if row[2] is not None)
    assert (root / "prepared" / f"{sha['pair']}.png").exists()  # rejected, but curate can show it


def test_curated_subsets_and_fitted_boring_model_reuse_the_cache(store, tmp_path):
    root, sha = store["root"], store["sha"]
    assert run(root, "--out", tmp_path / "warm.zip", "--resolution", 128, "--workers", 1).exit_code == 0
    # Phase 1 is cached now: an original that vanishes no longer matters for the same settings.
    with Store.open(root) as st:
        gone = st.object_path(sha["synth5"])
    saved = gone.read_bytes()
    gone.unlink()
    try:
        with Store.open(root) as st:
            for name in ("synth0", "synth3"):
                st.add_mark(sha[name], "favourite")
            for name in ("synth1", "synth5", "cmyk"):
                st.add_mark(sha[name], "keep")
            for name in ("alpha", "grey8", "grey16", "synth4", "pair"):
                st.add_mark(sha[name], "reject")
        out = tmp_path / "fav.zip"
        r = run(root, "--out", out, "--resolution", 128, "--subset", "favourites", "--workers", 1)
        assert r.exit_code == 0, r.output
        report = json.loads((tmp_path / "fav.report.json").read_text())
        assert {s for _, s, _ in report["images"]} == {sha["synth0"], sha["synth3"]}
        assert report["boring_model"].startswith("fitted on 10 curated marks")
        assert (tmp_path / "fav.boring-model.json").exists()
        assert report["counts"]["marked_reject"] == 4  # "pair" was already out as several_objects

        r = run(root, "--out", tmp_path / "keep.zip", "--resolution", 128, "--subset", "keep",
                "--boring-threshold", 0.0, "--workers", 1)
        assert r.exit_code == 0, r.output
        names, meta, _ = read_zip(tmp_path / "keep.zip")
        assert len(names) == 5 and meta == {"labels": None}  # marked images pass the boringness filter
    finally:
        gone.write_bytes(saved)
        with Store.open(root) as st:
            for s in st.latest_marks():
                st.add_mark(s, "clear")


def test_everything_boring_is_one_clear_error(store, tmp_path):
    r = run(store["root"], "--out", tmp_path / "none.zip", "--resolution", 128, "--boring-threshold", 0.0,
            "--workers", 1)
    assert r.exit_code == 1 and "no images left to export" in flat(r.output)
    assert not (tmp_path / "none.zip").exists()
    assert json.loads((tmp_path / "none.report.json").read_text())["counts"]["boring"] == 9


@pytest.mark.parametrize("args, message", [
    (["--resolution", "300"], "power of two"),
    (["--subset", "best"], "favourites"),
    (["--labels", "brand"], "silhouette"),
])
def test_bad_options_are_one_line_errors(store, tmp_path, args, message):
    r = run(store["root"], "--out", tmp_path / "x.zip", *args)
    assert r.exit_code == 2 and message in flat(r.output) and "Traceback" not in r.output


def test_missing_store_is_a_clear_error(tmp_path):
    r = run(tmp_path / "nope", "--out", tmp_path / "x.zip")
    assert r.exit_code == 2 and "is not a store (no manifest.sqlite)" in flat(r.output)


def test_silhouette_cap_keeps_one_per_shape(store, tmp_path):
    root, sha = store["root"], store["sha"]
    r = run(root, "--out", tmp_path / "cap.zip", "--resolution", 128, "--keep-boring", "--max-per-silhouette", 1,
            "--workers", 1)
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "cap.report.json").read_text())
    rows = prepared_rows(root)
    groups = [rows[s][4] for _, s, _ in report["images"]]
    assert len(groups) == len(set(groups))               # one per silhouette group
    # cmyk, alpha and the grey shoe are one drawn shape in three colourways: only one survives the cap.
    drawn = {sha["cmyk"], sha["alpha"], sha["grey16"], sha["grey8"]}
    assert len({s for _, s, _ in report["images"]} & drawn) == 1
    assert report["counts"]["kept"] + report["counts"]["silhouette_cap"] == 9
