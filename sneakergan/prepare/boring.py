"""How boring is a sneaker design? Measurable features of the shoe (not the background) and a score in [0, 1].

The seed system removed boring sneakers (plain, single-colour, low-contrast designs) before training. We measure
what "boring" means in pixels, on the foreground only (pixels that are not near-white):

- colourfulness   Hasler & Süsstrunk (2003), "Measuring colourfulness in natural images": spread and mean of the
                  opponent channels rg = R - G and yb = (R + G) / 2 - B.
- n_colours       colour clusters (median cut, near colours merged) covering at least 4% of the shoe.
- n_regions       connected regions of one palette colour covering at least 0.5% of the shoe.
- edge_density    share of the shoe's inner pixels on a colour edge (Sobel magnitude, largest over R, G, B).
- texture         mean Sobel magnitude inside the shoe (pattern and detail; 0..~1).
- contrast        standard deviation of luminance inside the shoe (0..~0.5).

`boringness(features)` combines them with fixed, documented defaults (`DEFAULT_SCORE`). Once a person has
curated images (keep / favourite = not boring, reject = boring) a `BoringModel` (logistic regression over the
standardised features) learns their taste and replaces the default; it is stored as plain JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from ..errors import UserError

FEATURES = ("colourfulness", "n_colours", "n_regions", "edge_density", "texture", "contrast")
ANALYSIS_SIDE = 128  # features are measured at this size so they do not depend on the input resolution
WHITE_TOLERANCE = 14  # a pixel within this distance (per channel) of white is background
EDGE_THRESHOLD = 0.1  # Sobel magnitude (channels in 0..1) counted as an edge
MERGE_DISTANCE = 60.0  # RGB distance under which two palette colours are one colour (shades, anti-aliasing)
MIN_COLOUR_SHARE = 0.04  # a colour counts when it covers this share of the shoe
MIN_REGION_SHARE = 0.005  # a region counts when it covers this share of the shoe


def _to_rgb_on_white(img: Image.Image) -> Image.Image:
    """RGB version of any Pillow image; transparency is composited onto white (webshop PNGs often have alpha)."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale into 8 bits before the RGB conversion clips it.
        arr = np.asarray(img, dtype=np.float64)
        full_scale = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray((arr * (255.0 / full_scale)).clip(0, 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def _colour_clusters(px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster pixel colours [N, 3] (0..255): median cut to 16 colours, then merge palette entries closer than
    MERGE_DISTANCE (so shades of one colour count once). Returns (cluster per pixel, share of each cluster)."""
    strip = Image.fromarray(px.astype(np.uint8)[None, :, :])
    q = strip.quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    idx = np.asarray(q)[0]
    palette = np.array(q.getpalette()[: 3 * 16], dtype=np.float64).reshape(-1, 3)
    counts = np.bincount(idx, minlength=len(palette)).astype(np.float64)
    centres: list[np.ndarray] = []
    weights: list[float] = []
    remap = np.zeros(len(palette), dtype=np.int64)
    for entry in np.argsort(-counts):
        if counts[entry] == 0:
            continue
        colour = palette[entry]
        dists = [np.linalg.norm(colour - c) for c in centres]
        if dists and min(dists) < MERGE_DISTANCE:
            j = int(np.argmin(dists))
            # Keep the centre at the weighted mean so a chain of shades does not drift far.
            centres[j] = (centres[j] * weights[j] + colour * counts[entry]) / (weights[j] + counts[entry])
            weights[j] += counts[entry]
        else:
            j = len(centres)
            centres.append(colour.copy())
            weights.append(counts[entry])
        remap[entry] = j
    labels = remap[idx]
    return labels, np.asarray(weights) / len(px)


def foreground_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels that belong to the shoe: any channel clearly below white."""
    return rgb.min(axis=2) < 255 - WHITE_TOLERANCE


def design_features(img: Image.Image) -> dict[str, float]:
    """Design features of the shoe in `img` (see the module docstring), measured on its non-white pixels.

    An image with no foreground gets all zeros (nothing to look at is as boring as it gets).
    """
    rgb_img = _to_rgb_on_white(img)
    scale = ANALYSIS_SIDE / max(rgb_img.size)
    if scale != 1:
        size = (max(1, round(rgb_img.width * scale)), max(1, round(rgb_img.height * scale)))
        rgb_img = rgb_img.resize(size, Image.BILINEAR)
    rgb = np.asarray(rgb_img, dtype=np.float64)
    # White parts of a shoe on white look like background: close small gaps in the outline, then fill holes.
    fg = ndimage.binary_fill_holes(ndimage.binary_closing(foreground_mask(rgb), iterations=1))
    n_fg = int(fg.sum())
    if n_fg < 16:
        return {k: 0.0 for k in FEATURES}
    px = rgb[fg] / 255.0

    rg = px[:, 0] - px[:, 1]
    yb = 0.5 * (px[:, 0] + px[:, 1]) - px[:, 2]
    colourfulness = math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())

    lum = (rgb @ np.array([0.299, 0.587, 0.114])) / 255.0
    contrast = float(lum[fg].std())

    # Edges inside the shoe only: erode the mask so the shoe's outline against white does not count.
    inner = ndimage.binary_erosion(fg, iterations=2)
    # Colour edges (largest Sobel magnitude over R, G, B): two hues of equal luminance still make an edge.
    chans = rgb / 255.0
    mag = np.max([np.hypot(ndimage.sobel(chans[..., c], axis=0), ndimage.sobel(chans[..., c], axis=1))
                  for c in range(3)], axis=0) / 4.0
    if inner.sum() > 0:
        edge_density = float((mag[inner] > EDGE_THRESHOLD).mean())
        texture = float(mag[inner].mean())
    else:
        edge_density = texture = 0.0

    labels, shares = _colour_clusters(rgb[fg])
    n_colours = int((shares >= MIN_COLOUR_SHARE).sum())
    # Connected regions of one colour cluster (on the image grid; background pixels get no cluster).
    grid = np.full(fg.shape, -1, dtype=np.int64)
    grid[fg] = labels
    min_area = max(2.0, MIN_REGION_SHARE * n_fg)
    n_regions = 0
    for cluster in np.nonzero(shares * n_fg >= min_area)[0]:
        comp, n = ndimage.label(grid == cluster)
        if n:
            n_regions += int((np.bincount(comp.ravel())[1:] >= min_area).sum())

    return {
        "colourfulness": float(colourfulness),
        "n_colours": float(n_colours),
        "n_regions": float(n_regions),
        "edge_density": edge_density,
        "texture": texture,
        "contrast": contrast,
    }


@dataclass(frozen=True)
class ScoreConfig:
    """Default boringness: 1 - weighted mean of saturating "interest" terms x / (x + half).

    `half[f]` is the value of feature f that counts as half-interesting; `weight[f]` its share of the score.
    The halves are the medians over synthetic sneakers at the analysis size (128 px), so a typical design
    scores about 0.5; a plain single-colour shoe (1-3 colours, a few regions, few inner edges) scores ~0.7+,
    a patterned multi-colour one (6+ colours, 30+ regions, dense edges) ~0.3 or less.
    """

    half: Mapping[str, float] = field(default_factory=lambda: {
        "colourfulness": 0.3, "n_colours": 5.0, "n_regions": 13.0, "edge_density": 0.5, "texture": 0.18,
        "contrast": 0.2})
    weight: Mapping[str, float] = field(default_factory=lambda: {
        "colourfulness": 1.0, "n_colours": 1.0, "n_regions": 1.5, "edge_density": 1.0, "texture": 0.5,
        "contrast": 1.0})


DEFAULT_SCORE = ScoreConfig()


def boringness(features: Mapping[str, float], config: ScoreConfig = DEFAULT_SCORE) -> float:
    """Boringness in [0, 1] (higher = more boring) from `design_features`, with the default weights."""
    total = sum(config.weight.values())
    interest = 0.0
    for name, w in config.weight.items():
        x = max(0.0, float(features.get(name, 0.0)))
        interest += w * x / (x + config.half[name])
    return float(min(1.0, max(0.0, 1.0 - interest / total)))


class BoringModelError(UserError):
    """A boring model file is missing, unreadable or of another format."""


@dataclass
class BoringModel:
    """Logistic regression over standardised features: P(boring). Fitted on curated marks; stored as JSON."""

    coef: list[float]
    intercept: float
    mean: list[float]
    std: list[float]
    features: tuple[str, ...] = FEATURES
    n_train: int = 0

    FORMAT = "sneakergan-boring-model/1"

    @classmethod
    def fit(cls, features: Sequence[Mapping[str, float]], boring: Sequence[bool | int], C: float = 1.0) -> BoringModel:
        """Fit on feature dicts and labels (True/1 = boring, i.e. rejected; False/0 = kept or favourite)."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(boring, dtype=int)
        if len(features) != len(y):
            raise ValueError(f"{len(features)} feature rows but {len(y)} labels")
        if len(set(y.tolist())) < 2:
            raise ValueError("need both boring (rejected) and not boring (kept/favourite) examples to fit")
        X = np.array([[float(f[name]) for name in FEATURES] for f in features])
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        std[std < 1e-9] = 1.0  # a constant feature carries no information; avoid dividing by zero
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=1000)
        clf.fit((X - mean) / std, y)
        return cls(coef=clf.coef_[0].tolist(), intercept=float(clf.intercept_[0]), mean=mean.tolist(),
                   std=std.tolist(), features=FEATURES, n_train=int(len(y)))

    def predict(self, features: Mapping[str, float]) -> float:
        """P(boring) in [0, 1] for one feature dict."""
        x = np.array([float(features.get(name, 0.0)) for name in self.features])
        z = float(np.dot((x - np.array(self.mean)) / np.array(self.std), self.coef) + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def to_dict(self) -> dict:
        return {"format": self.FORMAT, "features": list(self.features), "coef": self.coef,
                "intercept": self.intercept, "mean": self.mean, "std": self.std, "n_train": self.n_train}

    @classmethod
    def from_dict(cls, d: Mapping) -> BoringModel:
        if d.get("format") != cls.FORMAT:
            raise BoringModelError(f"not a boring model (format {d.get('format')!r}, expected {cls.FORMAT!r})")
        n = len(d["features"])
        if not (len(d["coef"]) == len(d["mean"]) == len(d["std"]) == n):
            raise BoringModelError("boring model: coef/mean/std lengths do not match the feature list")
        return cls(coef=[float(v) for v in d["coef"]], intercept=float(d["intercept"]),
                   mean=[float(v) for v in d["mean"]], std=[float(v) for v in d["std"]],
                   features=tuple(d["features"]), n_train=int(d.get("n_train", 0)))

    def save(self, path: Path) -> None:
        """Write as JSON (atomically: temp file + rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> BoringModel:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise BoringModelError(f"cannot read boring model {path}: {e}") from e
        try:
            return cls.from_dict(d)
        except (KeyError, TypeError, ValueError) as e:
            raise BoringModelError(f"bad boring model {path}: {e}") from e


def score(features: Mapping[str, float], model: BoringModel | None = None) -> float:
    """Boringness in [0, 1]: the fitted model's P(boring) when there is one, else the default score."""
    return model.predict(features) if model is not None else boringness(features)


MARK_IS_BORING = {"reject": True, "keep": False, "favourite": False}


def training_labels(marks: Mapping[str, str]) -> dict[str, bool]:
    """Curated marks (sha256 -> keep/reject/favourite/clear) to boring labels; cleared or unknown marks drop out."""
    return {sha: MARK_IS_BORING[m] for sha, m in marks.items() if m in MARK_IS_BORING}


def fit_from_store(store, min_per_class: int = 5) -> BoringModel | None:
    """Fit a BoringModel on a store's curated marks and the features prepare saved in its `prepared` table.

    `store` is an open `sneakergan.collect.store.Store`. Returns None while there are fewer than
    `min_per_class` rejected or fewer than `min_per_class` kept/favourite images with features (the default
    score stays in charge until a person has said enough about their taste).
    """
    import sqlite3

    labels = training_labels(store.latest_marks())
    if not labels:
        return None
    uri = f"file:{Path(store.root) / 'manifest.sqlite'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=30) as conn:
        rows = conn.execute("SELECT sha256, features FROM prepared WHERE features IS NOT NULL").fetchall()
    feats, ys = [], []
    for sha, text in rows:
        if sha not in labels:
            continue
        try:
            f = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(f, dict) and all(k in f for k in FEATURES):
            feats.append(f)
            ys.append(labels[sha])
    if sum(ys) < min_per_class or len(ys) - sum(ys) < min_per_class:
        return None
    return BoringModel.fit(feats, ys)
