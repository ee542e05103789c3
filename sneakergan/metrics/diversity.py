"""Diversity of a set of generated images against its own data, next to the ceiling a second data sample reaches.

A model is judged as a set: per-image plausibility (precision, density) says nothing about whether the samples
cover what the data holds (recall, coverage) or repeat one silhouette (mask IoU between random pairs). Every figure
is reported twice: for the generated set against a first data sample, and for a *second* data sample against the
first (the ceiling a perfect model would reach with this many images).

- Precision / recall: Kynkäänniemi et al. 2019 (k-NN balls, `precision_recall.py`).
- Density / coverage: Naeem et al. 2020; balls around *real* points only, so outliers of the generated set
  cannot inflate them.
- Feature spaces that work offline: a pixel-PCA space (images shrunk to 32 px on the long side, PCA fitted on the
  first data sample) and any `FeatureExtractor` (the random network, or Inception when its weights are given).
- Shape: mean IoU of foreground masks (what is not near-white) between random pairs of images. One silhouette
  in many colours gives a high IoU; the data's mix of low, mid and high tops a lower one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .fid import fid_from_features
from .precision_recall import _as_tensor, knn_radii, precision_recall

PCA_SIDE = 32  # pixels on the long side of the images the pixel-PCA space is fitted on
PCA_COMPONENTS = 64
WHITE_THRESHOLD = 235  # a pixel whose darkest channel is below this is foreground (white canvas behind the shoe)


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5, batch_size: int = 4096) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of `fake` [M, D] against `real` [N, D].

    density = mean over fakes of (how many real k-NN balls contain it) / k  (1 on average for matching sets);
    coverage = fraction of real balls that contain at least one fake.
    """
    real_t, fake_t = _as_tensor(real, "cpu"), _as_tensor(fake, "cpu")
    radii = knn_radii(real_t, k, batch_size)
    hits = torch.zeros(real_t.shape[0], dtype=torch.bool)
    inside = 0
    for start in range(0, fake_t.shape[0], batch_size):
        dist = torch.cdist(fake_t[start : start + batch_size], real_t)  # [m, N]
        within = dist <= radii[None, :]
        inside += int(within.sum().item())
        hits |= within.any(dim=0)
    return inside / (k * fake_t.shape[0]), float(hits.float().mean().item())


def shrink(images: np.ndarray, side: int = PCA_SIDE) -> np.ndarray:
    """uint8 [N, H, W, 3] -> float32 [N, h, w, 3] in [0, 1] with `side` pixels on the long side (box filter)."""
    n, h, w = images.shape[:3]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = np.stack([np.asarray(Image.fromarray(im[..., :3]).resize(size, Image.BOX)) for im in images])
    return out.astype(np.float32) / 255.0


@dataclass(frozen=True)
class PixelPCA:
    """A PCA basis of shrunken images: the feature space where 'does the set look like the data' is cheap and offline."""

    mean: np.ndarray  # [D]
    components: np.ndarray  # [K, D]

    @classmethod
    def fit(cls, images: np.ndarray, components: int = PCA_COMPONENTS, side: int = PCA_SIDE) -> "PixelPCA":
        x = shrink(images, side).reshape(len(images), -1).astype(np.float64)
        mean = x.mean(axis=0)
        k = min(components, len(images) - 1, x.shape[1])
        if k < 1:
            raise ValueError("pixel PCA needs at least 2 images")
        # Economy SVD of the centred data: the right singular vectors are the principal axes.
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        return cls(mean=mean.astype(np.float32), components=vt[:k].astype(np.float32))

    def __call__(self, images: np.ndarray, side: int = PCA_SIDE) -> np.ndarray:
        x = shrink(images, side).reshape(len(images), -1)
        return (x - self.mean) @ self.components.T


def foreground_masks(images: np.ndarray, side: int = 64) -> np.ndarray:
    """bool [N, h, w]: pixels that are not the white canvas, at `side` px on the long side."""
    small = shrink(images, side)
    return small.min(axis=3) < WHITE_THRESHOLD / 255.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float [N]: IoU of each pair of aligned bool masks a[i], b[i] (two empty masks are the same shape: 1)."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    inter = (a & b).sum(axis=1)
    union = (a | b).sum(axis=1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def mean_pair_iou(masks: np.ndarray, pairs: int = 2000, seed: int = 0) -> float:
    """Mean IoU of the foreground masks of random pairs of distinct images (1 = all one shape)."""
    n = len(masks)
    if n < 2:
        raise ValueError("mask IoU needs at least 2 images")
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, pairs)
    b = (a + rng.integers(1, n, pairs)) % n  # never the same image twice
    return float(np.mean(mask_iou(masks[a], masks[b])))


def set_figures(ref: np.ndarray, probe: np.ndarray, k: int = 3, k_dc: int = 5) -> dict[str, float]:
    """precision, recall, density, coverage and Frechet distance of `probe` features against `ref` features."""
    p, r = precision_recall(ref, probe, k=k)
    d, c = density_coverage(ref, probe, k=k_dc)
    return {"precision": p, "recall": r, "density": d, "coverage": c, "frechet": fid_from_features(ref, probe)}


def diversity_figures(real_a: np.ndarray, real_b: np.ndarray, fake: np.ndarray,
                      extractor=None, k: int = 3, seed: int = 0) -> dict[str, float]:
    """The diversity table for uint8 images: the generated set against data sample A, and sample B against A.

    Keys: `{space}_{figure}` for the generated set and `{space}_{figure}_ceiling` for sample B, with space `pca`
    (always) and `feat` (when a FeatureExtractor is given), figure precision/recall/density/coverage/frechet;
    plus `mask_iou` / `mask_iou_ceiling` (mean IoU of foreground masks between random pairs in each set).
    """
    if min(len(real_a), len(real_b), len(fake)) <= max(k, 5):
        raise ValueError(f"diversity figures need more than {max(k, 5)} images per set")
    out: dict[str, float] = {}
    spaces = {"pca": PixelPCA.fit(real_a)}
    if extractor is not None:
        spaces["feat"] = extractor
    for name, features in spaces.items():
        fa, fb, ff = features(real_a), features(real_b), features(fake)
        for key, value in set_figures(fa, ff, k).items():
            out[f"{name}_{key}"] = value
        for key, value in set_figures(fa, fb, k).items():
            out[f"{name}_{key}_ceiling"] = value
    out["mask_iou"] = mean_pair_iou(foreground_masks(fake), seed=seed)
    out["mask_iou_ceiling"] = mean_pair_iou(foreground_masks(real_b), seed=seed)
    return out


FIGURES = ("precision", "recall", "density", "coverage", "frechet")


def diversity_rows(results: dict[str, float]) -> list[tuple[str, str, dict[str, float]]]:
    """(metric, row label, {figure: value, 'mask_iou': value}) rows of every divNk table in `results`: for each
    feature space the generated set, then the data's second sample (the ceiling) right under it."""
    rows = []
    names = sorted({k.split("_", 1)[0] for k in results if k.startswith("div") and k.endswith("_mask_iou")})
    for metric in names:
        spaces = sorted({k[len(metric) + 1:].split("_", 1)[0] for k in results
                         if k.startswith(metric + "_") and not k.startswith(metric + "_mask_iou")})
        for space in spaces:
            for label, suffix in (("generated", ""), ("data, 2nd sample (ceiling)", "_ceiling")):
                row = {f: results[f"{metric}_{space}_{f}{suffix}"] for f in FIGURES
                       if f"{metric}_{space}_{f}{suffix}" in results}
                row["mask_iou"] = results[f"{metric}_mask_iou{suffix}"]
                rows.append((f"{metric} {space}", label, row))
    return rows


def mean_over_seeds(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's mean over runs that differ only in the seed of the generated samples (keys of the first run).

    Recall and coverage of 1,000 samples move by about 0.02 from one draw to the next, as much as a target's
    margin, so a model is judged on the mean of a few draws rather than on one."""
    return {k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0]}


def diversity_rows_over_seeds(seeds: list[int], per_seed: list[dict[str, float]]
                              ) -> list[tuple[str, str, dict[str, float]]]:
    """`diversity_rows` of several sample seeds: per space, one generated row per seed, then their mean, then the
    ceiling (averaged too: the data's own figures do not depend on the generated samples, their pair draws may)."""
    if len(per_seed) == 1:
        return diversity_rows(per_seed[0])
    mean_rows = diversity_rows(mean_over_seeds(per_seed))
    by_seed = [diversity_rows(r) for r in per_seed]
    rows = []
    for i, (space, label, row) in enumerate(mean_rows):
        if label == "generated":
            rows += [(space, f"generated, seed {s}", rs[i][2]) for s, rs in zip(seeds, by_seed)]
            label = f"generated, mean of {len(seeds)} seeds"
        rows.append((space, label, row))
    return rows
