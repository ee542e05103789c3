"""Diversity metrics: density/coverage, pixel-PCA, mask IoU, and the divNk table next to its data ceiling."""

import numpy as np
import pytest
import torch

from sneakergan.metrics.diversity import (
    PixelPCA,
    density_coverage,
    diversity_figures,
    foreground_masks,
    mean_pair_iou,
)
from sneakergan.prepare.synth import render_sneaker


def gaussian(n, d=8, seed=0, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32) + shift


def test_density_coverage_identical_sets_and_collapse():
    real = gaussian(400)
    d, c = density_coverage(real, real, k=5)
    assert c == 1.0 and d > 1.0  # each real point lies in its own ball and in its neighbours'
    # A second sample of the same distribution: near the ideal values (density ~1, coverage high).
    d2, c2 = density_coverage(real, gaussian(400, seed=1), k=5)
    assert 0.7 < d2 < 1.3 and c2 > 0.9
    # A set collapsed onto one real point covers almost nothing, however plausible that point is.
    collapsed = np.repeat(real[:1], 400, axis=0)
    dc, cc = density_coverage(real, collapsed, k=5)
    assert cc < 0.05  # only the few real balls that happen to reach that one point
    # Far away: neither dense nor covering.
    df, cf = density_coverage(real, gaussian(400, seed=2, shift=20.0), k=5)
    assert df == 0.0 and cf == 0.0


def sneakers(seeds, res=32):
    return np.stack([np.asarray(render_sneaker(s, res, (4, 3))[0]) for s in seeds])


@pytest.fixture(scope="module")
def three_sets():
    return sneakers(range(0, 120)), sneakers(range(1000, 1120)), sneakers(range(2000, 2120))


def test_pixel_pca_fits_and_projects(three_sets):
    a, b, _ = three_sets
    pca = PixelPCA.fit(a, components=16)
    fa, fb = pca(a), pca(b)
    assert fa.shape == (120, 16) and fb.shape == (120, 16)
    assert abs(float(fa.mean())) < 1e-4  # centred on the fitted sample
    # The first axis carries the most variance.
    var = fa.var(axis=0)
    assert var[0] == pytest.approx(var.max()) and var[0] > var[-1]


def test_mask_iou_one_shape_vs_data(three_sets):
    a, _, _ = three_sets
    masks = foreground_masks(a)
    assert masks.shape[0] == 120 and masks.any(axis=(1, 2)).all()
    data_iou = mean_pair_iou(masks)
    same = mean_pair_iou(foreground_masks(np.repeat(a[:1], 50, axis=0)))
    assert same == pytest.approx(1.0)
    assert 0.3 < data_iou < 0.9


def test_diversity_table_identical_ceiling_and_collapse(three_sets):
    a, b, c = three_sets
    # A "model" that draws fresh sneakers from the data's distribution reaches the ceiling's figures.
    good = diversity_figures(a, b, c, k=3)
    for key in ("precision", "recall", "coverage"):
        assert good[f"pca_{key}"] > 0.6, key
        assert abs(good[f"pca_{key}"] - good[f"pca_{key}_ceiling"]) < 0.2, key
    assert abs(good["mask_iou"] - good["mask_iou_ceiling"]) < 0.05
    # Collapsed onto one image of the data: plausible (precision high) but recall and coverage near 0.
    collapsed = np.repeat(a[5:6], 120, axis=0)
    bad = diversity_figures(a, b, collapsed, k=3)
    assert bad["pca_precision"] == 1.0
    assert bad["pca_recall"] < 0.05 and bad["pca_coverage"] < 0.2 < good["pca_coverage"] - 0.3
    assert bad["mask_iou"] == pytest.approx(1.0) and bad["mask_iou_ceiling"] < 0.9
    assert bad["pca_frechet"] > good["pca_frechet"]


def test_diversity_with_a_feature_extractor(three_sets):
    from sneakergan.metrics.features import build_extractor

    a, b, c = three_sets
    ext = build_extractor("random-tiny", device="cpu")
    out = diversity_figures(a[:40], b[:40], c[:40], extractor=ext)
    assert {"feat_recall", "feat_coverage_ceiling", "pca_density"} <= set(out)
    assert all(np.isfinite(v) for v in out.values())


def test_div_metric_through_the_pipeline(tmp_path):
    """`div1k` on a tiny untrained G: keys for both spaces, a ceiling row, and fakes far below it."""
    from sneakergan.metrics.pipeline import MetricError, parse_metric, run_metrics
    from sneakergan.nets import Generator, preset
    from sneakergan.prepare.synth import write_synth_dataset
    import dataclasses

    data = write_synth_dataset(tmp_path / "d.zip", count=40, resolution=32, seed=3)
    torch.manual_seed(0)
    G = Generator(dataclasses.replace(preset("tiny"), resolution=32)).eval()
    rep = run_metrics(G, data, ["div1k"], num=20, extractor="random-tiny", batch_size=10, cache_dir=tmp_path / "c")
    r = rep.results
    assert {"div1k_pca_recall", "div1k_pca_recall_ceiling", "div1k_rand_coverage", "div1k_mask_iou",
            "div1k_mask_iou_ceiling"} <= set(r)
    assert r["div1k_pca_coverage"] < r["div1k_pca_coverage_ceiling"]  # noise is not sneakers
    assert parse_metric("div2k").num_gen == 2000
    with pytest.raises(MetricError):
        parse_metric("div1k", num=3)


def test_diversity_rows_pair_each_row_with_its_ceiling():
    from sneakergan.metrics.diversity import diversity_rows

    res = {"fid50k_full": 3.0, "div1k_mask_iou": 0.8, "div1k_mask_iou_ceiling": 0.6}
    for space in ("pca", "rand"):
        for f in ("precision", "recall", "density", "coverage", "frechet"):
            res[f"div1k_{space}_{f}"] = 0.1
            res[f"div1k_{space}_{f}_ceiling"] = 0.9
    rows = diversity_rows(res)
    assert [(m, lab.split(",")[0]) for m, lab, _ in rows] == [
        ("div1k pca", "generated"), ("div1k pca", "data"), ("div1k rand", "generated"), ("div1k rand", "data")]
    assert rows[0][2]["recall"] == 0.1 and rows[1][2]["recall"] == 0.9
    assert rows[0][2]["mask_iou"] == 0.8 and rows[1][2]["mask_iou"] == 0.6
    assert diversity_rows({"fid50k_full": 1.0}) == []


def test_metrics_cli_prints_the_diversity_table_with_its_ceiling(tmp_path):
    from pathlib import Path

    from typer.testing import CliRunner

    from sneakergan.cli import app
    from sneakergan.prepare.synth import write_synth_dataset

    from sneakergan.modelfile import read_meta
    from sneakergan.serve.model_source import DEMO_NAME

    demo = Path(__file__).resolve().parents[1] / "models" / DEMO_NAME
    cfg = read_meta(demo)["config"]  # the data must have the model's canvas (the demo is 4:3)
    aspect = tuple(cfg.get("aspect") or (1, 1))
    data = write_synth_dataset(tmp_path / "d.zip", count=24, resolution=cfg["resolution"], seed=4, aspect=aspect)
    res = CliRunner().invoke(app, ["metrics", "--model", str(demo), "--data", str(data), "--metrics", "div1k",
                                   "--num", "12", "--extractor", "random-tiny", "--cache-dir", str(tmp_path / "c"),
                                   "--json", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    lines = [l for l in res.output.splitlines() if "div1k pca" in l]
    assert len(lines) == 2 and "generated" in lines[0] and "ceiling" in lines[1]
    import json

    results = json.loads((tmp_path / "m.json").read_text())["results"]
    assert results["div1k_pca_coverage_ceiling"] > results["div1k_pca_coverage"] - 1e-9


def test_mean_over_seeds_and_its_rows():
    from sneakergan.metrics.diversity import diversity_rows, diversity_rows_over_seeds, mean_over_seeds

    def results(recall: float, ceiling_iou: float) -> dict[str, float]:
        return {"div1k_pca_recall": recall, "div1k_pca_recall_ceiling": 0.9,
                "div1k_mask_iou": 0.7, "div1k_mask_iou_ceiling": ceiling_iou}

    runs = [results(0.4, 0.64), results(0.6, 0.66)]
    mean = mean_over_seeds(runs)
    assert mean["div1k_pca_recall"] == pytest.approx(0.5) and mean["div1k_mask_iou_ceiling"] == pytest.approx(0.65)
    rows = diversity_rows_over_seeds([3, 7], runs)
    assert [label for _, label, _ in rows] == [
        "generated, seed 3", "generated, seed 7", "generated, mean of 2 seeds", "data, 2nd sample (ceiling)"]
    assert [row["recall"] for _, _, row in rows] == pytest.approx([0.4, 0.6, 0.5, 0.9])
    assert diversity_rows_over_seeds([0], runs[:1]) == diversity_rows(runs[0])


def test_metrics_cli_over_several_seeds_reports_each_and_the_mean(tmp_path):
    """`--seeds 0-1` gives the same figures as `--seed 0` and `--seed 1` run one by one, and their mean."""
    import json

    from typer.testing import CliRunner

    from sneakergan.cli import app
    from sneakergan.modelfile import save_checkpoint
    from sneakergan.nets import Generator, preset
    from sneakergan.prepare.synth import write_synth_dataset
    import dataclasses

    data = write_synth_dataset(tmp_path / "d.zip", count=24, resolution=32, seed=5)
    torch.manual_seed(0)
    cfg = dataclasses.replace(preset("tiny"), resolution=32)
    save_checkpoint(tmp_path / "g", cfg, {"G_ema": Generator(cfg).eval()})

    def run(*seed_args: str) -> dict:
        out = tmp_path / f"m{'_'.join(seed_args)}.json"
        res = CliRunner().invoke(app, ["metrics", "--model", str(tmp_path / "g"), "--data", str(data), "--metrics",
                                       "div1k", "--num", "12", "--extractor", "random-tiny", "--cache-dir",
                                       str(tmp_path / "c"), "--json", str(out), *seed_args])
        assert res.exit_code == 0, res.output
        return json.loads(out.read_text()) | {"output": res.output}

    one, two, both = run("--seed", "0"), run("--seed", "1"), run("--seeds", "0-1")
    assert one["results"]["div1k_pca_recall"] != two["results"]["div1k_pca_recall"]  # the draw matters
    assert both["seeds"] == [0, 1] and both["per_seed"] == [one["results"], two["results"]]
    for key, value in both["results"].items():
        assert value == pytest.approx((one["results"][key] + two["results"][key]) / 2)
    labels = [l for l in both["output"].splitlines() if "div1k pca" in l]
    assert len(labels) == 4 and "seed 0" in labels[0] and "mean of 2 seeds" in labels[2]
    assert "generated, seed" not in one["output"] and "generated " in one["output"]  # one seed: the plain table
    bad = CliRunner().invoke(app, ["metrics", "--model", str(tmp_path / "g"), "--data", str(data), "--metrics",
                                   "div1k", "--seeds", "x-y"])
    assert bad.exit_code == 2 and "x-y" in bad.output
