"""Compute FID / KID / precision-recall / diversity of a generator against a dataset, as the StyleGAN2-ADA metrics do.

`divNk` is the diversity table (diversity.py): precision, recall, density, coverage and Frechet distance in a
pixel-PCA space and in the extractor's feature space, plus the foreground-mask IoU of random pairs; each figure also
for a second sample of the data against the first (`..._ceiling`), the best a model can reach with N images.

Real features are computed once per (dataset content, extractor, image count) and cached on disk;
generated images use psi=1 and latents from a fixed seed, so two runs on one checkpoint agree.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .data import ImageDataset
from .diversity import diversity_figures
from .features import FeatureExtractor, build_extractor, default_cache_dir
from .fid import fid_from_features
from .kid import kernel_inception_distance
from .precision_recall import precision_recall
from ..errors import UserError

KNOWN_METRICS = ("fid50k_full", "kid50k_full", "pr50k3_full", "div1k")
PR_MAX_REAL_FULL = 200_000  # the reference caps the real set of pr*_full here (k-NN radii are O(N^2))

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class MetricError(UserError):
    """A metric name or sample count that cannot be computed."""


@dataclass(frozen=True)
class MetricSpec:
    """One requested metric: what it measures and on how many samples."""

    name: str
    kind: str  # "fid" | "kid" | "pr" | "div"
    num_gen: int
    max_real: int | None  # None: the whole dataset
    k: int = 3


def parse_metric(name: str, num: int | None = None) -> MetricSpec:
    """`fid50k_full`, `kid50k_full`, `pr50k3_full`, `div1k` (any thousands count); `num` overrides the sample count."""
    if m := re.fullmatch(r"div(\d+)k", name):
        count = int(m.group(1)) * 1000
        num_gen = count if num is None else num
        if num_gen < 8:
            raise MetricError(f"{name} needs at least 8 generated samples, got {num_gen}")
        return MetricSpec(name=name, kind="div", num_gen=num_gen, max_real=2 * num_gen)
    if m := re.fullmatch(r"(fid|kid)(\d+)k(_full)?", name):
        kind, count, full = m.group(1), int(m.group(2)) * 1000, bool(m.group(3))
        k = 3
    elif m := re.fullmatch(r"pr(\d+)k(\d+)(_full)?", name):
        kind, count, k, full = "pr", int(m.group(1)) * 1000, int(m.group(2)), bool(m.group(3))
    else:
        raise MetricError(f"unknown metric {name!r}; known: {', '.join(KNOWN_METRICS)} (any NNk count)")
    num_gen = count if num is None else num
    if kind == "pr":
        max_real = PR_MAX_REAL_FULL if full else num_gen
    else:
        max_real = None if full else num_gen
    minimum = k + 1 if kind == "pr" else 2
    if num_gen < minimum:
        raise MetricError(f"{name} needs at least {minimum} generated samples, got {num_gen}")
    return MetricSpec(name=name, kind=kind, num_gen=num_gen, max_real=max_real, k=k)


@dataclass
class MetricsReport:
    """The numbers plus what they were computed from."""

    results: dict[str, float]
    extractor: str
    comparable: bool  # False: the numbers are not comparable to published FIDs
    num_gen: int
    num_real: int
    dataset: str
    dataset_hash: str
    real_cached: bool
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def real_features(
    dataset: ImageDataset,
    extractor: FeatureExtractor,
    max_items: int | None,
    cache_dir: Path,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> tuple[np.ndarray, str, bool]:
    """Features of the first `max_items` dataset images (all when None), from the cache when present.

    Returns (features, dataset_hash, was_cached). A cached full-dataset array also serves any prefix.
    """
    digest = dataset.content_hash()
    count = len(dataset) if max_items is None else min(max_items, len(dataset))
    folder = cache_dir / "real-features"
    stem = f"{digest[:24]}-{extractor.ident}"
    for candidate in (folder / f"{stem}-{count}.npy", folder / f"{stem}-{len(dataset)}.npy"):
        if candidate.is_file():
            try:
                cached = np.load(candidate, allow_pickle=False)
            except (OSError, ValueError):
                continue  # a damaged cache entry is recomputed below
            if cached.shape[0] >= count and cached.shape[1] == extractor.feature_dim:
                return cached[:count], digest, True
    feats = []
    done = 0
    for batch in dataset.iter_batches(batch_size, count):
        feats.append(extractor(batch))
        done += len(batch)
        if progress:
            progress("real", done, count)
    array = np.concatenate(feats).astype(np.float32)
    _atomic_save(folder / f"{stem}-{count}.npy", array)
    return array, digest, False


@torch.no_grad()
def generated_batches(G: torch.nn.Module, num: int, batch_size: int = 32, seed: int = 0, invert: bool | None = None,
                      device: torch.device | None = None):
    """Yield uint8 [n, H, W, 3] batches of `num` images from G at psi=1, latents (and labels) from
    numpy's RandomState(seed). Noise is drawn from torch's RNG, forked and seeded: the caller's RNG is untouched."""
    from sneakergan.generate import images_to_uint8, synthesize

    device = device or next(G.parameters()).device
    if next(G.parameters()).device != device:
        G = copy.deepcopy(G).to(device)  # never move the caller's (possibly training) network
    if invert is None:
        invert = bool(getattr(getattr(G, "cfg", None), "invert", False))
    rng = np.random.RandomState(seed)
    fork_devices = [device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        for start in range(0, num, batch_size):
            n = min(batch_size, num - start)
            z = torch.from_numpy(rng.randn(n, G.z_dim).astype(np.float32)).to(device)
            c = None
            if getattr(G, "c_dim", 0):
                c = torch.nn.functional.one_hot(torch.from_numpy(rng.randint(G.c_dim, size=n)), G.c_dim)
                c = c.float().to(device)
            yield images_to_uint8(synthesize(G, z, c, psi=1.0, noise_mode="random"), invert=invert)


@torch.no_grad()
def generated_features(
    G: torch.nn.Module,
    extractor: FeatureExtractor,
    num: int,
    batch_size: int = 32,
    seed: int = 0,
    invert: bool | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Features of `num` images from G at psi=1 (`generated_batches`)."""
    feats = []
    done = 0
    for batch in generated_batches(G, num, batch_size, seed, invert, device=extractor.device):
        feats.append(extractor(batch))
        done += len(batch)
        if progress:
            progress("generated", done, num)
    return np.concatenate(feats).astype(np.float32)


def diversity_metric(G: torch.nn.Module, dataset: ImageDataset, spec: MetricSpec, extractor: FeatureExtractor | None,
                     batch_size: int = 32, seed: int = 0, progress: Progress | None = None) -> dict[str, float]:
    """The `divNk` table: N generated images against the first N data images, the next N as the ceiling.

    A dataset with fewer than 2N images is split in halves (and N shrinks to a half)."""
    n = min(spec.num_gen, len(dataset) // 2)
    if n <= 5:
        raise MetricError(f"{spec.name} needs at least 12 dataset images, the dataset has {len(dataset)}")
    real = np.concatenate(list(dataset.iter_batches(batch_size, 2 * n)))
    fake = np.concatenate(list(generated_batches(G, n, batch_size, seed)))
    if progress:
        progress("generated", n, n)
    if fake.shape[1:3] != real.shape[1:3]:
        raise MetricError(f"{spec.name}: the generator makes {fake.shape[2]}x{fake.shape[1]} images, "
                          f"the dataset holds {real.shape[2]}x{real.shape[1]}")
    figures = diversity_figures(real[:n], real[n: 2 * n], fake, extractor=extractor, k=spec.k, seed=seed)
    space = "feat" if extractor is None else extractor_short_name(extractor)
    return {f"{spec.name}_{key.replace('feat_', space + '_', 1)}": v for key, v in figures.items()}


def extractor_short_name(extractor: FeatureExtractor) -> str:
    """'incep' or 'rand': how a feature space is named in metric keys."""
    return "incep" if extractor.name.startswith("inception") else "rand"


def run_metrics(
    G: torch.nn.Module,
    dataset_path: str | os.PathLike,
    metrics: list[str],
    num: int | None = None,
    extractor: str | FeatureExtractor = "inception",
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    features: str | os.PathLike | None = None,
    batch_size: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
) -> MetricsReport:
    """Compute `metrics` for G against the dataset; see `compute_metrics` for the arguments."""
    start = time.perf_counter()
    specs = [parse_metric(name, num) for name in metrics]
    if not specs:
        raise MetricError("no metrics requested")
    if device is None:
        device = next(G.parameters()).device
    if isinstance(extractor, str):
        extractor = build_extractor(extractor, weights=features, device=device)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    results: dict[str, float] = {}
    feature_specs = [s for s in specs if s.kind != "div"]
    with ImageDataset(dataset_path) as dataset:
        for spec in specs:
            if spec.kind == "div":
                results.update(diversity_metric(G, dataset, spec, extractor, batch_size, seed, progress))
        digest, cached, real = dataset.content_hash(), False, np.zeros((0, 0), np.float32)
        num_in_dataset = len(dataset)
        if feature_specs:
            max_real = None if any(s.max_real is None for s in feature_specs) else max(s.max_real for s in feature_specs)
            real, digest, cached = real_features(dataset, extractor, max_real, cache, batch_size, progress)
    if feature_specs:
        fake = generated_features(G, extractor, max(s.num_gen for s in feature_specs), batch_size, seed,
                                  progress=progress)

    for spec in feature_specs:
        r = real if spec.max_real is None else real[: spec.max_real]
        f = fake[: spec.num_gen]
        if spec.kind == "fid":
            results[spec.name] = fid_from_features(r, f)
        elif spec.kind == "kid":
            results[spec.name] = kernel_inception_distance(r, f, seed=seed)
        else:
            if len(r) <= spec.k:
                raise MetricError(f"{spec.name} needs more than {spec.k} real images, the dataset has {len(r)}")
            p, rc = precision_recall(r, f, k=spec.k, device=extractor.device)
            results[f"{spec.name}_precision"] = p
            results[f"{spec.name}_recall"] = rc
    return MetricsReport(
        results=results,
        extractor=extractor.name,
        comparable=extractor.comparable,
        num_gen=max(s.num_gen for s in specs),  # a div metric on a small dataset uses fewer (see its keys)
        num_real=len(real) if feature_specs else min(2 * max(s.num_gen for s in specs), num_in_dataset),
        dataset=str(dataset_path),
        dataset_hash=digest,
        real_cached=cached,
        seconds=time.perf_counter() - start,
    )


def compute_metrics(
    G: torch.nn.Module,
    dataset_path: str | os.PathLike,
    metrics: list[str],
    num: int | None = None,
    extractor: str | FeatureExtractor = "inception",
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs,
) -> dict[str, float]:
    """Metric values for G, e.g. {"fid50k_full": 12.3, "pr50k3_full_precision": 0.7, ...}.

    `num` overrides every metric's generated-sample count; `extractor` is "inception" (weights from
    `features=PATH`, $SNEAKERGAN_INCEPTION or the cache dir), "random-tiny", or a built FeatureExtractor
    (reuse one across training snapshots); `device` defaults to G's; `cache_dir` holds real-feature
    caches (default ~/.cache/sneakergan). Keyword extras: features, batch_size, seed, progress.
    """
    return run_metrics(G, dataset_path, metrics, num, extractor, device, cache_dir, **kwargs).results
