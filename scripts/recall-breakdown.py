"""Which training images a model's samples miss, as a picture and (for the synthetic set) per design attribute.

    .venv/bin/python scripts/recall-breakdown.py --model models/demo64x48 --data data/synth64x48.zip \
        --out models/demo64x48-recall.webp

The same protocol as `sneakergan metrics --metrics div1k` (N samples at psi 1, seed 0, against the first N data
images, pixel-PCA space, k = 3): a data image is *recalled* when it lies inside some sample's k-NN ball. Recall says
how many are missed; this says which. For a dataset made by `sneakergan synth` (params.json inside the zip) it also
prints the recalled share per value of each design attribute (family, top, colourway, ...), and the mix of low, mid
and high tops among the samples and among the first 60 gallery tiles (psi 0.7), told apart by the height of the
silhouette's taller end with thresholds learnt from the labelled data.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from collections import Counter

import numpy as np
import torch
from PIL import Image, ImageDraw

from sneakergan.generate import generate_images, load_generator, make_grid
from sneakergan.metrics.data import ImageDataset
from sneakergan.metrics.diversity import PixelPCA, foreground_masks
from sneakergan.metrics.pipeline import generated_batches
from sneakergan.metrics.precision_recall import inside_manifold, knn_radii
from sneakergan.modelref import resolve_model

ATTRIBUTES = ("family", "top", "colourway", "scheme", "pattern", "material")
TOPS = ("low", "mid", "high")
GALLERY_TILES, GALLERY_PSI = 60, 0.7  # what a visitor sees first: /gallery's first page (serve --psi default)


def end_heights(masks: np.ndarray) -> np.ndarray:
    """float [N]: height of each silhouette's taller end (outer quarter of its length) over its length. Low, mid and
    high tops differ here: the collar rises at the heel, whichever way the shoe faces."""
    out = np.zeros(len(masks))
    for i, m in enumerate(masks):
        cols, rows = np.flatnonzero(m.any(0)), np.flatnonzero(m.any(1))
        if len(cols) < 4:
            continue
        x0, x1, length = cols[0], cols[-1], cols[-1] - cols[0] + 1
        ends = (m[:, x0: x0 + length // 4], m[:, x1 + 1 - length // 4: x1 + 1])
        out[i] = max((rows[-1] - np.flatnonzero(e.any(1))[0] + 1) / length for e in ends)
    return out


def top_mix(heights: np.ndarray, cuts: tuple[float, float]) -> str:
    low, high = heights < cuts[0], heights >= cuts[1]
    shares = [low.mean(), (~low & ~high).mean(), high.mean()]
    return " / ".join(f"{t} {s:.2f}" for t, s in zip(TOPS, shares))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model file or name (models/NAME)")
    ap.add_argument("--data", required=True, help="the training set (zip or folder)")
    ap.add_argument("--num", type=int, default=1000)
    ap.add_argument("--out", required=True, help="picture: missed images above, recalled ones below")
    ap.add_argument("--rows", type=int, default=3, help="rows of 8 images per half of the picture")
    args = ap.parse_args()

    G = load_generator(str(resolve_model(args.model)) + ".safetensors")
    ds = ImageDataset(args.data)
    real = np.concatenate(list(ds.iter_batches(32, args.num)))
    fake = np.concatenate(list(generated_batches(G, len(real), 32, seed=0)))
    pca = PixelPCA.fit(real)
    fr, ff = torch.from_numpy(pca(real)), torch.from_numpy(pca(fake))
    radii = knn_radii(ff, 3)
    hit = inside_manifold(ff, radii, fr).numpy()
    print(f"recall {hit.mean():.3f} ({hit.sum()} of {len(hit)} data images inside some sample's 3-NN ball)")
    # Misplaced or clumped? Where the samples sit (distance from each data image to its nearest sample) against how
    # tightly (the samples' own 3-NN radii), each beside the data's own figures (its 3-NN radii, its spacing).
    nearest = torch.cdist(fr, ff).min(dim=1).values
    data_radii = knn_radii(fr, 3)
    print(f"median 3-NN radius: samples {radii.median():.2f}, data {data_radii.median():.2f}; median distance from a "
          f"data image to its nearest sample {nearest.median():.2f}")
    grown = [float(inside_manifold(ff, radii * s, fr).float().mean()) for s in (1.2, 1.5)]
    print(f"recall if the samples' radii were 1.2x / 1.5x: {grown[0]:.3f} / {grown[1]:.3f} (clumping, when these "
          "rise steeply)")

    rng = np.random.default_rng(0)
    n = 8 * args.rows
    halves = [("training images no sample covers (recall misses)", rng.permutation(np.flatnonzero(~hit))[:n]),
              ("training images the samples cover", rng.permutation(np.flatnonzero(hit))[:n])]
    grids = [(title, make_grid([real[i] for i in idx], cols=8)) for title, idx in halves if len(idx)]
    width = max(g.width for _, g in grids)
    sheet = Image.new("RGB", (width, sum(g.height + 16 for _, g in grids)), "white")
    y = 0
    for title, grid in grids:
        ImageDraw.Draw(sheet).text((4, y + 2), title, fill="black")
        sheet.paste(grid, (0, y + 16))
        y += grid.height + 16
    sheet.resize((sheet.width * 2, sheet.height * 2), Image.LANCZOS).save(args.out, quality=85)
    print(f"wrote {args.out}")

    try:
        with zipfile.ZipFile(args.data) as zf:
            params = json.loads(zf.read("params.json"))["images"]
    except (OSError, KeyError, zipfile.BadZipFile, ValueError):
        return  # not a synthetic set: the picture is all there is
    names = ds.names[: len(hit)]
    # Heights: thresholds halfway between neighbouring labels' 90th / 10th percentiles on the data's own masks.
    tops = np.array([params.get(name, {}).get("top") for name in names])
    heights = end_heights(foreground_masks(real))
    if all((tops == t).any() for t in TOPS):
        cut = [(np.percentile(heights[tops == a], 90) + np.percentile(heights[tops == b], 10)) / 2
               for a, b in zip(TOPS, TOPS[1:])]
        tiles = np.stack([im for _, im in generate_images(G, list(range(GALLERY_TILES)), psi=GALLERY_PSI)])
        print(f"tops by silhouette height (cuts {cut[0]:.3f}, {cut[1]:.3f}): data {top_mix(heights, cut)}; "
              f"samples {top_mix(end_heights(foreground_masks(fake)), cut)}; first {GALLERY_TILES} gallery tiles "
              f"(psi {GALLERY_PSI}) {top_mix(end_heights(foreground_masks(tiles)), cut)}")
    for key in ATTRIBUTES:
        values = [params.get(name, {}).get(key) for name in names]
        total = Counter(values)
        recalled = Counter(v for v, h in zip(values, hit) if h)
        print(f"{key:<10} " + "  ".join(f"{v} {recalled[v] / c:.2f} ({c})" for v, c in total.most_common()
                                         if v is not None))


if __name__ == "__main__":
    main()
