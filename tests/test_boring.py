"""Boringness: features measured on the shoe, default score ordering, a model that learns curated labels."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sneakergan.prepare.boring import (
    FEATURES,
    BoringModel,
    BoringModelError,
    boringness,
    design_features,
    score,
    training_labels,
)
from sneakergan.prepare.synth import render_params, render_sneaker, sample_params


def plain_and_busy(seed: int) -> tuple[dict, dict]:
    """The same shoe shape twice: one colour without details, and bold multi-colour with a pattern."""
    p = sample_params(seed)
    plain = dict(p, pattern="none", logo="none", toe_cap=False, heel_counter=False, eyestay=False,
                 air_window=False, midsole_stripe=False, pull_tab=False)
    plain["colors"] = {k: "#3a62b8" for k in p["colors"]}
    plain["colors"]["outline"] = "#1f3566"
    busy = dict(p, pattern="stripes", pattern_scale=0.04, logo="swoosh", toe_cap=True, heel_counter=True,
                eyestay=True)
    busy["colors"] = dict(p["colors"], base="#e83a30", pattern="#f5d922", toe="#2aa84a", heel="#2a4ad8",
                          logo="#ffffff", eyestay="#111111", midsole="#ffffff", outsole="#222222")
    return plain, busy


@pytest.mark.parametrize("resolution", [64, 128])
def test_plain_shoe_is_more_boring_than_patterned(resolution):
    for seed in range(3):
        plain, busy = plain_and_busy(seed)
        fp = design_features(render_params(plain, resolution))
        fb = design_features(render_params(busy, resolution))
        assert fp["n_colours"] < fb["n_colours"]
        assert fp["n_regions"] < fb["n_regions"]
        assert fp["edge_density"] < fb["edge_density"]
        assert fp["colourfulness"] < fb["colourfulness"]
        assert boringness(fp) > boringness(fb) + 0.15


def test_hand_drawn_flat_shape_vs_dotted_multicolour():
    """Independent of synth: a flat grey blob against a dotted two-colour one."""
    def blob(dotted: bool) -> Image.Image:
        img = Image.new("RGB", (128, 128), "white")
        d = ImageDraw.Draw(img)
        d.ellipse([10, 40, 118, 90], fill=(120, 120, 120))
        if dotted:
            d.rectangle([64, 40, 118, 90], fill=(200, 30, 30))
            for x in range(20, 110, 10):
                for y in range(50, 85, 10):
                    d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(250, 220, 0))
            # keep the outline of the ellipse: repaint outside white
            mask = Image.new("L", img.size, 0)
            ImageDraw.Draw(mask).ellipse([10, 40, 118, 90], fill=255)
            img = Image.composite(img, Image.new("RGB", img.size, "white"), mask)
        return img

    flat, dotted = design_features(blob(False)), design_features(blob(True))
    assert flat["n_colours"] == 1 and flat["colourfulness"] < 0.05
    assert boringness(flat) > boringness(dotted)


def test_features_ignore_background_and_input_format():
    img, _ = render_sneaker(11, 128)
    f = design_features(img)
    assert set(f) == set(FEATURES)
    # Padding with more white changes nothing but the scale; RGBA with a transparent background reads as white.
    padded = Image.new("RGB", (256, 256), "white")
    padded.paste(img, (64, 64))
    fpad = design_features(padded)
    assert abs(fpad["colourfulness"] - f["colourfulness"]) < 0.05
    rgba = img.convert("RGBA")
    arr = np.asarray(rgba).copy()
    white = arr[..., :3].min(axis=2) == 255
    arr[white] = (0, 0, 0, 0)  # transparent black background
    fa = design_features(Image.fromarray(arr, "RGBA"))
    assert abs(fa["colourfulness"] - f["colourfulness"]) < 0.02
    assert fa["n_colours"] == f["n_colours"]
    # Grey-scale and empty images do not crash.
    assert design_features(img.convert("L"))["colourfulness"] < 0.01
    empty = design_features(Image.new("RGB", (64, 64), "white"))
    assert all(v == 0 for v in empty.values()) and boringness(empty) == 1.0


def test_model_learns_a_labelled_split_and_round_trips(tmp_path):
    # Taste to learn: this curator rejects every black or earth-toned shoe, whatever its pattern.
    feats, labels = [], []
    for seed in range(120):
        img, p = render_sneaker(seed, 48)
        feats.append(design_features(img))
        labels.append(p["scheme"] in ("black", "earth"))
    assert 10 < sum(labels) < 110
    model = BoringModel.fit(feats[:80], labels[:80])
    pred = [model.predict(f) > 0.5 for f in feats[80:]]
    acc = np.mean([a == b for a, b in zip(pred, labels[80:])])
    default_acc = np.mean([(boringness(f) > np.median([boringness(g) for g in feats])) == b
                           for f, b in zip(feats[80:], labels[80:])])
    assert acc >= 0.85 and acc > default_acc
    assert all(0.0 <= model.predict(f) <= 1.0 for f in feats)

    path = tmp_path / "boring.json"
    model.save(path)
    d = json.loads(path.read_text())
    assert d["features"] == list(FEATURES) and len(d["coef"]) == len(FEATURES) and d["n_train"] == 80
    again = BoringModel.load(path)
    assert [again.predict(f) for f in feats[:5]] == pytest.approx([model.predict(f) for f in feats[:5]])
    assert score(feats[0], again) == pytest.approx(model.predict(feats[0]))
    assert score(feats[0]) == boringness(feats[0])


def test_model_errors(tmp_path):
    f = design_features(render_sneaker(0, 32)[0])
    with pytest.raises(ValueError):
        BoringModel.fit([f, f], [True, True])  # one class only
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(BoringModelError):
        BoringModel.load(bad)
    bad.write_text("not json")
    with pytest.raises(BoringModelError):
        BoringModel.load(bad)


def test_training_labels_from_marks():
    marks = {"a": "keep", "b": "reject", "c": "favourite", "d": "clear"}
    assert training_labels(marks) == {"a": False, "b": True, "c": False}


def test_fit_from_store_uses_marks_and_prepared_features(tmp_path):
    import io
    import sqlite3

    from sneakergan.collect.store import Store
    from sneakergan.prepare.boring import fit_from_store

    root = tmp_path / "store"
    store = Store.open(root, create=True)
    # Taste: this curator rejects black and earth-toned shoes.
    rows = []
    for seed in range(40):
        img, p = render_sneaker(seed, 48)
        buf = io.BytesIO()
        img.resize((64, 64)).save(buf, format="PNG")
        sha = store.add_bytes(buf.getvalue(), {"kind": "folder"})["sha256"]
        rows.append((sha, design_features(img), p["scheme"] in ("black", "earth")))
    conn = sqlite3.connect(root / "manifest.sqlite")  # what prepare writes
    with conn:
        conn.executemany("INSERT INTO prepared (sha256, status, boring, features) VALUES (?, 'ok', ?, ?)",
                         [(sha, boringness(f), json.dumps(f)) for sha, f, _ in rows])
    conn.close()
    assert fit_from_store(store) is None  # no marks yet
    for sha, _, rejected in rows[:4]:
        store.add_mark(sha, "reject" if rejected else "keep")
    assert fit_from_store(store) is None  # too few to learn from
    for sha, _, rejected in rows:
        store.add_mark(sha, "reject" if rejected else "favourite")
    model = fit_from_store(store)
    assert model is not None and model.n_train == 40
    acc = np.mean([(model.predict(f) > 0.5) == rejected for _, f, rejected in rows])
    assert acc >= 0.8
    store.close()
