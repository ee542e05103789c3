"""Tests of the metrics stage: the math against independent references, the extractors, the pipeline."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from scipy import linalg

from sneakergan.metrics.fid import feature_statistics, fid_from_features, frechet_distance
from sneakergan.metrics.kid import kernel_inception_distance, mmd2_unbiased
from sneakergan.metrics.precision_recall import inside_manifold, knn_radii, precision_recall


def _random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# ---------------------------------------------------------------------------------------------- FID


@pytest.mark.parametrize("zeros", [0, 5, 20])
def test_fid_matches_closed_form_for_commuting_covariances(zeros):
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute, so FID = |dmu|^2 + sum (sqrt a - sqrt b)^2 exactly,
    # including when some eigenvalues are zero or 1e-14 (singular / near-singular covariances).
    rng = np.random.default_rng(zeros)
    d = 32
    q = _random_orthogonal(d, rng)
    a = rng.uniform(0.1, 3.0, d)
    b = rng.uniform(0.1, 3.0, d)
    a[:zeros] = 0.0
    b[zeros // 2 : zeros] = 1e-14
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_fid_matches_scipy_sqrtm_on_well_conditioned_gaussians():
    rng = np.random.default_rng(1)
    d = 48
    x = rng.standard_normal((d, 3 * d))
    y = rng.standard_normal((d, 3 * d)) + 0.5 * x
    s1, s2 = x @ x.T / (3 * d), y @ y.T / (3 * d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    root = linalg.sqrtm(s1 @ s2)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root).real
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("r1,r2", [(5, 7), (30, 3), (64, 64)])
def test_fid_on_rank_deficient_non_commuting_covariances(r1, r2):
    # With S1 = A A^T and S2 = B B^T, the eigenvalues of S1 S2 are the squared singular values of A^T B,
    # so Tr((S1 S2)^1/2) = nuclear norm of A^T B: an independent reference that needs no matrix root.
    rng = np.random.default_rng(r1 * 100 + r2)
    d = 64
    a = rng.standard_normal((d, r1)) * rng.uniform(1e-3, 2, r1)
    b = rng.standard_normal((d, r2)) * rng.uniform(1e-3, 2, r2)
    s1, s2 = a @ a.T, b @ b.T
    mu1, mu2 = rng.standard_normal(d), np.zeros(d)
    nuclear = np.linalg.svd(a.T @ b, compute_uv=False).sum()
    expected = mu1 @ mu1 + np.trace(s1) + np.trace(s2) - 2 * nuclear
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8, abs=1e-8)


def test_fid_of_identical_singular_statistics_is_the_mean_distance_only():
    rng = np.random.default_rng(2)
    feats = rng.standard_normal((10, 40))  # 10 samples in 40-d: covariance of rank 9
    mu, sigma = feature_statistics(feats)
    assert np.linalg.matrix_rank(sigma) == 9
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu, sigma, mu + 0.5, sigma) == pytest.approx(0.25 * 40, rel=1e-9)
    assert fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-9)


def test_fid_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---------------------------------------------------------------------------------------------- KID


def _brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda u, v: (float(u @ v) / d + 1.0) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_mmd2_matches_brute_force_unbiased_estimate():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((25, 6))
    y = rng.standard_normal((25, 6)) * 1.3 + 0.2
    assert mmd2_unbiased(x, y) == pytest.approx(_brute_force_mmd2(x, y), rel=1e-10)


def test_kid_with_full_subsets_equals_brute_force_and_separates_distributions():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((30, 8))
    fake = rng.standard_normal((30, 8)) + 0.7
    # Subsets as large as the sets are permutations of them, and the estimate is permutation invariant.
    kid = kernel_inception_distance(real, fake, num_subsets=3, max_subset_size=1000)
    assert kid == pytest.approx(_brute_force_mmd2(fake, real), rel=1e-10)
    same = kernel_inception_distance(real, rng.standard_normal((30, 8)), num_subsets=20)
    assert abs(same) < kid / 5


def test_kid_subsets_are_seeded_and_average_the_subset_estimates():
    rng = np.random.default_rng(5)
    real = rng.standard_normal((200, 4))
    fake = rng.standard_normal((150, 4)) + 0.3
    kid = kernel_inception_distance(real, fake, num_subsets=7, max_subset_size=40, seed=11)
    assert kid == kernel_inception_distance(real, fake, num_subsets=7, max_subset_size=40, seed=11)
    # Re-draw the same subsets by hand: fake subset first, then real, from the same generator.
    sub = np.random.default_rng(11)
    manual = []
    for _ in range(7):
        x = fake[sub.choice(150, 40, replace=False)]
        y = real[sub.choice(200, 40, replace=False)]
        manual.append(_brute_force_mmd2(x, y))
    assert kid == pytest.approx(np.mean(manual), rel=1e-9)


# ---------------------------------------------------------------------------------------- precision/recall


def _brute_force_pr(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(a):
        d = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]

    def coverage(manifold, r, probes):
        d = np.sqrt(((probes[:, None] - manifold[None]) ** 2).sum(-1))
        return float((d <= r[None]).any(axis=1).mean())

    return coverage(real, radii(real), fake), coverage(fake, radii(fake), real)


def test_precision_recall_identical_disjoint_and_subset():
    rng = np.random.default_rng(6)
    real = rng.standard_normal((300, 2)).astype(np.float32)
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    # A tight corner of the real cloud: everything generated is realistic, but little of the real set is covered.
    corner = real[np.argsort(np.linalg.norm(real - real[0], axis=1))[:30]]
    precision, recall = precision_recall(real, corner)
    assert precision == 1.0
    assert recall < 0.3


def test_precision_recall_matches_brute_force_across_blocks():
    rng = np.random.default_rng(7)
    real = rng.standard_normal((97, 3)).astype(np.float32)
    fake = (rng.standard_normal((61, 3)) * 0.8 + 0.4).astype(np.float32)
    expected = _brute_force_pr(real.astype(np.float64), fake.astype(np.float64), k=3)
    got = precision_recall(real, fake, k=3, batch_size=16)  # several row and column blocks
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.0 < got[0] < 1.0 and 0.0 < got[1] < 1.0
    radii = knn_radii(torch.from_numpy(real), k=3, batch_size=10).numpy()
    d = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    assert np.allclose(radii, np.sort(d, axis=1)[:, 3], atol=1e-5)



def test_inside_manifold_names_the_recalled_reals():
    """Recall is the share of reals inside the generated balls; inside_manifold says which ones."""
    rng = np.random.default_rng(8)
    real = rng.standard_normal((200, 2)).astype(np.float32)
    corner = real[np.argsort(np.linalg.norm(real - real[0], axis=1))[:40]]  # fakes crowd one corner
    f, r = torch.from_numpy(corner), torch.from_numpy(real)
    hit = inside_manifold(f, knn_radii(f, 3), r, batch_size=32).numpy()
    assert hit.dtype == bool and hit.shape == (200,)
    assert hit.mean() == pytest.approx(precision_recall(real, corner)[1])
    # The recalled reals are the ones near the corner, the missed ones far from it.
    dist = np.linalg.norm(real - real[0], axis=1)
    assert dist[hit].max() < np.median(dist[~hit])

# ---------------------------------------------------------------------------------------------- features

from sneakergan.metrics.features import (  # noqa: E402
    INCEPTION_ENV,
    INCEPTION_FILE,
    InceptionV3Features,
    MissingWeightsError,
    build_extractor,
    load_inception,
    resolve_inception_weights,
)


def test_inception_builds_gives_2048_features_and_round_trips_through_both_loaders(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = InceptionV3Features().eval()
    with torch.no_grad():  # He init keeps the signal alive through ~90 layers; random BN statistics
        for module in net.modules():  # make a loader that skipped them visible
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    images = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8)
    with torch.no_grad():
        expected = net(images)
    assert expected.shape == (2, 2048) and torch.isfinite(expected).all()
    assert (expected[0] - expected[1]).abs().max() > 0.01 * expected.abs().max()

    # Shaped like pytorch-fid's file: a classifier head we skip, no num_batches_tracked entries.
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    torch.save(state, tmp_path / INCEPTION_FILE)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "inception.safetensors"))
    for path in (tmp_path / INCEPTION_FILE, tmp_path / "inception.safetensors"):
        loaded = load_inception(path)
        with torch.no_grad():
            assert torch.equal(loaded(images), expected)

    partial = {k: v for k, v in state.items() if not k.startswith("Mixed_7c.")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="does not look like"):
        load_inception(tmp_path / "partial.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    for junk in ("junk.pth", "junk.safetensors"):
        with pytest.raises(ValueError, match="cannot read weights"):
            load_inception(tmp_path / junk)


def test_weights_resolution_and_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(MissingWeightsError) as err:
        resolve_inception_weights()
    message = str(err.value)
    assert INCEPTION_FILE in message and "github.com/mseitzer/pytorch-fid/releases" in message
    assert "--features" in message and INCEPTION_ENV in message
    with pytest.raises(MissingWeightsError):
        resolve_inception_weights(tmp_path / "nope.pth")
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    monkeypatch.setenv(INCEPTION_ENV, str(weights))
    assert resolve_inception_weights() == weights
    cached = tmp_path / "cache" / "sneakergan" / INCEPTION_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    monkeypatch.delenv(INCEPTION_ENV)
    assert resolve_inception_weights() == cached


def test_random_tiny_extractor_is_deterministic_and_accepts_both_layouts():
    a, b = build_extractor("random-tiny"), build_extractor("random-tiny")
    assert not a.comparable and a.name == "random-tiny"
    images = np.random.default_rng(0).integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    fa = a(images)
    assert fa.shape == (3, a.feature_dim) and fa.dtype == np.float32
    assert np.array_equal(fa, b(torch.from_numpy(images).permute(0, 3, 1, 2)))
    with pytest.raises(ValueError, match="unknown extractor"):
        build_extractor("vgg")


# ---------------------------------------------------------------------------------------------- pipeline

from typer.testing import CliRunner  # noqa: E402

from sneakergan.metrics.data import DatasetError, ImageDataset  # noqa: E402
from sneakergan.metrics.pipeline import MetricError, parse_metric, run_metrics  # noqa: E402

ALL = ["fid50k_full", "kid50k_full", "pr50k3_full"]


def test_parse_metric_names_and_num_override():
    assert parse_metric("fid50k_full") == parse_metric("fid50k_full", None)
    spec = parse_metric("fid50k_full")
    assert (spec.kind, spec.num_gen, spec.max_real) == ("fid", 50_000, None)
    spec = parse_metric("pr50k3_full", num=20)
    assert (spec.kind, spec.num_gen, spec.k) == ("pr", 20, 3)
    assert parse_metric("kid10k").max_real == 10_000
    for bad in ("fid", "is50k", "fid50k_full_x"):
        with pytest.raises(MetricError, match="unknown metric"):
            parse_metric(bad)
    with pytest.raises(MetricError, match="at least 4"):
        parse_metric("pr50k3_full", num=3)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A random `tiny` generator saved as a model file, and 24 small images as a folder and as a zip."""
    from PIL import Image

    from sneakergan.modelfile import save_checkpoint
    from sneakergan.nets import Generator, preset

    root = tmp_path_factory.mktemp("metrics")
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(root / "data.zip", "w") as zf:
        for i in range(24):
            # Smooth colour blobs: a stand-in for photos, different in statistics from a random G.
            yy, xx = np.mgrid[0:32, 0:32] / 31.0
            img = np.stack([np.sin(xx * rng.uniform(1, 6)), np.cos(yy * rng.uniform(1, 6)), xx * yy], -1)
            arr = ((img - img.min()) / (np.ptp(img) + 1e-8) * 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / f"{i:05d}.png")
            zf.write(folder / f"{i:05d}.png", f"00000/img{i:08d}.png")
        zf.writestr("dataset.json", '{"labels": null}')
    cfg = preset("tiny")
    torch.manual_seed(0)
    G = Generator(cfg).eval()
    save_checkpoint(root / "tiny", cfg, nets={"G": G, "G_ema": G}, state={"kimg": 0})
    return {"root": root, "folder": folder, "zip": root / "data.zip", "G": G, "ckpt": root / "tiny"}


def test_pipeline_end_to_end_on_tiny_preset_with_cache(tiny_setup, tmp_path):
    G, cache = tiny_setup["G"], tmp_path / "cache"
    kw = dict(num=12, extractor="random-tiny", device="cpu", cache_dir=cache, batch_size=5)
    first = run_metrics(G, tiny_setup["folder"], ALL, **kw)
    assert set(first.results) == {"fid50k_full", "kid50k_full", "pr50k3_full_precision", "pr50k3_full_recall"}
    assert all(np.isfinite(v) for v in first.results.values())
    assert first.results["fid50k_full"] > 0
    assert 0 <= first.results["pr50k3_full_precision"] <= 1 and 0 <= first.results["pr50k3_full_recall"] <= 1
    assert (first.num_gen, first.num_real, first.comparable, first.real_cached) == (12, 24, False, False)
    assert len(list((cache / "real-features").glob("*.npy"))) == 1

    again = run_metrics(G, tiny_setup["folder"], ALL, **kw)
    assert again.real_cached and again.results == first.results  # fixed seeds: identical numbers

    # The zip holds the same pixels: same real features (its own cache key), same numbers.
    zipped = run_metrics(G, tiny_setup["zip"], ALL, **kw)
    assert not zipped.real_cached and zipped.dataset_hash != first.dataset_hash
    assert zipped.results == pytest.approx(first.results, rel=1e-6)

    other_seed = run_metrics(G, tiny_setup["folder"], ["fid50k_full"], seed=1, **kw)
    assert other_seed.results["fid50k_full"] != first.results["fid50k_full"]


def test_pipeline_fid_of_the_dataset_against_itself_is_zero(tiny_setup, tmp_path):
    from sneakergan.metrics.pipeline import real_features

    ext = build_extractor("random-tiny")
    with ImageDataset(tiny_setup["folder"]) as ds:
        real, _, _ = real_features(ds, ext, None, tmp_path, batch_size=7)
        assert real.shape == (24, ext.feature_dim)
        assert fid_from_features(real, real) == pytest.approx(0.0, abs=1e-6)
        assert precision_recall(real, real) == (1.0, 1.0)
        head, _, cached = real_features(ds, ext, 10, tmp_path)
    assert cached and np.array_equal(head, real[:10])  # a prefix is served from the full cache


def test_dataset_hash_tracks_content_and_bad_paths_are_clear(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    before = ImageDataset(tmp_path).content_hash()
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "1.png", compress_level=0)
    assert ImageDataset(tmp_path).content_hash() != before
    Image.new("L", (16, 12)).save(tmp_path / "3.png")  # greyscale, other size: converted and resized
    batch = next(ImageDataset(tmp_path).iter_batches(8))
    assert batch.shape == (4, 8, 8, 3) and batch.dtype == np.uint8
    with pytest.raises(DatasetError, match="does not exist"):
        ImageDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        ImageDataset(tmp_path / "empty")


def test_cli_metrics_runs_and_says_random_tiny_is_not_comparable(tiny_setup, tmp_path):
    import json

    from sneakergan.cli import app

    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, [
        "metrics", "--checkpoint", str(tiny_setup["ckpt"]), "--data", str(tiny_setup["zip"]),
        "--metrics", "fid50k_full,pr50k3_full", "--num", "8", "--extractor", "random-tiny",
        "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "fid50k_full" in result.output and "NOT comparable" in result.output
    report = json.loads(out.read_text())
    assert report["num_gen"] == 8 and report["extractor"] == "random-tiny"
    assert set(report["results"]) == {"fid50k_full", "pr50k3_full_precision", "pr50k3_full_recall"}


def test_cli_missing_inception_weights_exits_2_naming_the_file(tiny_setup, tmp_path, monkeypatch):
    from sneakergan.cli import app

    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    runner = CliRunner()
    args = ["metrics", "--checkpoint", str(tiny_setup["ckpt"]), "--data", str(tiny_setup["folder"]), "--num", "8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert INCEPTION_FILE in result.output and "Traceback" not in result.output
    result = runner.invoke(app, args + ["--features", str(tmp_path / "nowhere.pth")])
    assert result.exit_code == 2 and "nowhere.pth" in result.output and INCEPTION_FILE in result.output
