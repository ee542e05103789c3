"""Class labels a person brings: `prepare --labels FILE` -> the reference's dataset.json -> `generate --class NAME`;
and rejected files named the way the person knows them (original path or URL)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sneakergan.cli import app
from sneakergan.labels import LabelsError, class_index, match_labels, read_label_file
from sneakergan.modelfile import read_meta, save_checkpoint
from sneakergan.nets import Generator, NetworkConfig

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


def ok(*args: object):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


def reference_labels(zip_path: Path) -> tuple[list[str], np.ndarray]:
    """Read labels the way the reference's ImageFolderDataset does: dataset.json's `labels` as a dict from the
    archive name to the label, looked up for every image in sorted order, then int64 (class indices)."""
    with zipfile.ZipFile(zip_path) as zf:
        fnames = sorted(n for n in zf.namelist() if n.lower().endswith(".png"))
        labels = dict(json.loads(zf.read("dataset.json"))["labels"])
    arr = np.array([labels[f.replace("\\", "/")] for f in fnames])
    return fnames, arr.astype({1: np.int64, 2: np.float32}[arr.ndim])


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Five synthetic shoes collected from a folder (plus a file that is no image), labelled by a CSV that names
    them by relative path, absolute path and sha256 and leaves one out, then prepared."""
    from sneakergan.prepare.synth import render_sneaker

    root = tmp_path_factory.mktemp("labels")
    photos = root / "photos"
    (photos / "mid").mkdir(parents=True)
    for k in range(5):
        img = render_sneaker(k, 192)[0]
        img.save(photos / ("mid" if k == 2 else "") / f"shoe{k}.png")
    (photos / "notes.png").write_bytes(b"not an image at all")
    store = root / "store"
    ok("collect", "folder", photos, "--store", store, "--quiet")
    status = ok("collect", "status", store).output
    assert str(photos / "notes.png") in status and "not_image" in status  # the rejected file, by its path

    from sneakergan.collect.store import Store

    with Store.open(store, create=False) as st:
        sha_of = {Path(s["extra"]["path"]).name: r["sha256"] for r in st.iter_images("ok")
                  for s in st.sources_of(r["sha256"])}
    csv_file = root / "classes.csv"
    csv_file.write_text("image,class\n"
                        f"shoe0.png,low top\n"                       # relative to the imported folder
                        f"{photos / 'shoe1.png'},high top\n"         # absolute
                        f"mid/shoe2.png,mid top\n"
                        f"{sha_of['shoe3.png']},low top\n"           # by sha256
                        f"gone.png,high top\n")                      # names nothing: counted, not fatal
    out = root / "ds.zip"
    r = ok("prepare", store, "--out", out, "--resolution", "64", "--keep-boring", "--labels", csv_file,
           "--workers", "1", "--dedupe-threshold", "0")
    assert "high top, low top, mid top" in r.output and "1 label(s) named no kept image" in r.output
    report = json.loads(out.with_name("ds.report.json").read_text())
    return {"root": root, "photos": photos, "zip": out, "report": report, "sha": sha_of}


def test_prepare_labels_are_what_the_reference_reads(labelled):
    fnames, labels = reference_labels(labelled["zip"])
    report = labelled["report"]
    assert report["class_names"] == ["high top", "low top", "mid top"]
    with zipfile.ZipFile(labelled["zip"]) as zf:
        assert json.loads(zf.read("dataset.json"))["class_names"] == report["class_names"]
    want = {"shoe0.png": "low top", "shoe1.png": "high top", "shoe2.png": "mid top", "shoe3.png": "low top"}
    by_sha = {sha: name for name, sha in labelled["sha"].items()}
    got = {by_sha[sha]: report["class_names"][label] for _, sha, label in report["images"]}
    assert got == want
    assert labels.dtype == np.int64 and len(fnames) == 4
    assert [report["class_names"][i] for i in labels] == [want[by_sha[sha]] for _, sha, _ in report["images"]]
    # the unlabelled shoe is left out, and the report names it by its original path
    (rej,) = [r for r in report["rejected"] if r[1] == "unlabelled"]
    assert rej[3] == str(labelled["photos"] / "shoe4.png")
    assert report["labels_unmatched"] == 1 and report["labels_unmatched_examples"] == ["gone.png"]

    from sneakergan.train.dataset import ImageDataset

    ds = ImageDataset(labelled["zip"], use_labels=True)
    assert ds.label_dim == 3 and ds.label_kind == "class"


def test_generate_class_by_name_on_a_conditional_model(labelled, tmp_path):
    cfg = NetworkConfig(z_dim=16, w_dim=16, resolution=16, mapping_layers=2, channel_base=256, channel_max=16,
                        c_dim=3)
    torch.manual_seed(0)
    G = Generator(cfg).eval()
    ckpt = tmp_path / "run" / "checkpoint-latest"
    save_checkpoint(ckpt, cfg, {"G": G, "G_ema": G}, provenance={"dataset": str(labelled["zip"])})
    ok("generate", "--model", tmp_path / "run", "--class", "mid top", "--seeds", "4", "--out", tmp_path / "byname")
    ok("generate", "--model", ckpt, "--class", "2", "--seeds", "4", "--out", tmp_path / "byindex")
    ok("generate", "--model", ckpt, "--class", "low top", "--seeds", "4", "--out", tmp_path / "other")
    a, b, c = (np.asarray(Image.open(tmp_path / d / "seed0004.png")) for d in ("byname", "byindex", "other"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)

    r = runner.invoke(app, ["generate", "--model", str(ckpt), "--class", "sandal", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "high top, low top, mid top" in r.output
    r = runner.invoke(app, ["generate", "--model", str(ckpt), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--class" in r.output

    # export keeps the names in the model file: the dataset is not needed any more
    ok("export", "--model", tmp_path / "run", "--out", tmp_path / "served")
    assert read_meta(tmp_path / "served")["provenance"]["class_names"] == ["high top", "low top", "mid top"]
    moved = labelled["zip"].rename(labelled["zip"].with_name("moved.zip"))
    try:
        ok("generate", "--model", tmp_path / "served", "--class", "mid top", "--seeds", "4", "--out", tmp_path / "e")
    finally:
        moved.rename(labelled["zip"])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "e" / "seed0004.png")), a)


def test_label_files_json_and_mistakes(tmp_path):
    j = tmp_path / "l.json"
    j.write_text(json.dumps({"a.jpg": "red", "https://shop.example/b.jpg": "blue"}))
    assert read_label_file(j) == {"a.jpg": "red", "https://shop.example/b.jpg": "blue"}
    j.write_text(json.dumps([["a.jpg", "red"], ["b.jpg", 3]]))
    assert read_label_file(j) == {"a.jpg": "red", "b.jpg": "3"}
    bad = {
        "l.json": ('{"a.jpg": ["red"]}', "must be text"),
        "m.json": ("[1, 2]", "not an [image, class] pair"),
        "c.csv": ("a.jpg,red,extra\n", "two columns"),
        "d.csv": ("a.jpg,red\na.jpg,blue\n", "two classes"),
        "e.csv": ("image,class\n", "no labels"),
        "f.txt": ("a.jpg red\n", ".csv or .json"),
    }
    for name, (text, msg) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(LabelsError, match=re.escape(msg)):
            read_label_file(tmp_path / name)
    found, unused = match_labels({"s1": ["s1", "https://x/1.jpg"], "s2": ["s2"]}, {"https://x/1.jpg": "red",
                                                                                  "zzz": "blue"})
    assert found == {"s1": "red"} and unused == {"zzz"}
    with pytest.raises(LabelsError, match="unconditional"):
        class_index("red", None, 0)
    with pytest.raises(LabelsError, match=r"index in \[0, 2\)"):
        class_index("5", None, 2)


def test_prepare_refuses_a_broken_label_file_before_any_work(tmp_path):
    from sneakergan.collect.store import Store

    Store.open(tmp_path / "store").close()
    (tmp_path / "l.csv").write_text("a.jpg,red,green\n")
    r = runner.invoke(app, ["prepare", str(tmp_path / "store"), "--out", str(tmp_path / "d.zip"), "--labels",
                            str(tmp_path / "l.csv")])
    assert r.exit_code == 2 and r.output.startswith("error: ") and "line 1" in r.output
    assert not (tmp_path / "store" / "prepared").exists() and not (tmp_path / "d.zip").exists()
