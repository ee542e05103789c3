"""The shipped demo model draws sneakers, as varied as its training data, and its sliders change them visibly.

The statistics (sneakergan.metrics.sneaker_stats) check a mostly white background, a darker sole band in the bottom
third of the object and a single connected object. An untrained network of the same shape fails them, so passing
means the model learned sneakers, not just that it runs. The diversity test judges the samples as a set against the
synthetic training data (pixel-PCA recall and coverage, the outlines' pairwise IoU), with looser bounds than the
model card's 1,000-sample figures since it draws a few hundred.
"""

import json
from math import gcd
from pathlib import Path

import numpy as np
import pytest
import torch

from sneakergan.edit.directions import DirectionSet, directions_path
from sneakergan.edit.effect import silhouette_iou
from sneakergan.edit.render import Renderer
from sneakergan.generate import generate_images, load_generator
from sneakergan.metrics.diversity import diversity_figures
from sneakergan.metrics.sneaker_stats import summarize
from sneakergan.modelfile import read_meta
from sneakergan.nets import Generator
from sneakergan.prepare.synth import write_synth_dataset
from sneakergan.serve.model_source import DEMO_NAME
from sneakergan.train.dataset import ImageDataset

MODELS = Path(__file__).resolve().parents[1] / "models"
DEMO = MODELS / f"{DEMO_NAME}.safetensors"
SEEDS = list(range(1000, 1048))


@pytest.fixture(scope="module")
def demo():
    return load_generator(DEMO)


def test_demo_model_is_shipped_small_and_safe():
    assert DEMO.exists(), f"models/{DEMO_NAME}.safetensors is the shipped demo model"
    size = DEMO.stat().st_size + DEMO.with_suffix(".json").stat().st_size
    assert size < 30e6
    meta = read_meta(DEMO)
    assert meta["nets"] == ["G_ema"] and meta["config"]["resolution"] in (64, 128, 256)
    assert meta["state"]["kimg"] > 0


def test_demo_model_is_landscape(demo):
    # Side views are wide: the demo draws 4:3 canvases, as the site lays them out.
    w, h = demo.cfg.img_width, demo.cfg.img_height
    assert w * 3 == h * 4 and w >= 64, (w, h)


def test_demo_samples_look_like_sneakers(demo):
    images = [arr for _, arr in generate_images(demo, SEEDS, psi=0.7, batch_size=16)]
    stats = summarize(images)
    assert stats["background_white"] > 0.9, stats
    assert stats["single_object"] > 0.8, stats
    assert stats["sole_contrast"] > 0.05, stats
    assert stats["sneaker_like"] > 0.7, stats


def test_untrained_network_of_the_same_shape_fails(demo):
    torch.manual_seed(0)
    G = Generator(demo.cfg).eval()
    images = [arr for _, arr in generate_images(G, SEEDS[:16], psi=0.7, batch_size=16)]
    assert summarize(images)["sneaker_like"] < 0.2


def _synth_images(path: Path, count: int, seed: int, demo) -> np.ndarray:
    w, h = demo.cfg.img_width, demo.cfg.img_height
    write_synth_dataset(path, count, max(w, h), seed=seed, aspect=(w // gcd(w, h), h // gcd(w, h)))
    ds = ImageDataset(str(path))
    return np.stack([ds[i][0].permute(1, 2, 0).numpy() for i in range(len(ds))])


@pytest.fixture(scope="module")
def variety(demo, tmp_path_factory):
    """The model card's protocol: 1,000 samples at psi 1 against 1,000 synthetic training images, beside a second
    1,000 (the ceiling). Fewer samples would flatter a model: at 300, the 760-kimg demo64x48's recall read 0.38, at
    1,000 0.19."""
    tmp = tmp_path_factory.mktemp("variety")
    real_a = _synth_images(tmp / "a.zip", 1000, 11, demo)
    real_b = _synth_images(tmp / "b.zip", 1000, 12, demo)
    fake = np.stack([arr for _, arr in generate_images(demo, list(range(1000)), psi=1.0, batch_size=50)])
    assert fake.shape[1:] == real_a.shape[1:]
    fig = diversity_figures(real_a, real_b, fake)
    assert fig["pca_recall_ceiling"] > 0.8 and fig["pca_coverage_ceiling"] > 0.9, fig  # the yardstick itself works
    return fig


def test_demo_model_covers_the_data_and_its_shapes(variety):
    """Two of the issue's three targets (coverage >= 0.6; outlines as varied as the data's, within 0.05), with 0.03
    of slack for the synthetic sample drawn here. The first demo (one silhouette) had coverage 0.11 and 0.89."""
    fig = variety
    assert abs(fig["mask_iou"] - fig["mask_iou_ceiling"]) <= 0.05 + 0.03, fig
    assert fig["pca_coverage"] >= 0.6 - 0.03, fig


def test_demo_model_reaches_the_datas_tails(variety):
    """The third target, recall >= 0.5: samples reaching every part of the data, not only its modes (0.19 before
    the neighbour-spread leg of the recipe unclumped the samples; models/README.md)."""
    assert variety["pca_recall"] >= 0.5 - 0.03, variety


def _named(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    items = data["directions"] if isinstance(data, dict) else data
    return [d for d in items if d.get("name") and not d.get("hidden")]


def test_demo_directions_are_named_and_one_changes_the_shape(demo):
    named = _named(DEMO.with_name(f"{DEMO_NAME}.directions.json"))
    assert len(named) >= 3
    renderer = Renderer(demo, DirectionSet.load(directions_path(DEMO)), model_id=DEMO_NAME)
    iou = silhouette_iou(renderer, [d["id"] for d in named], seeds=range(8))
    assert min(iou.values()) < 0.75, iou  # the bar for "visibly changes the silhouette"


def test_coarse_style_mixing_changes_the_shape(demo):
    # Through the editor's own mixing: seed a with the coarse (or fine) layers of seed b. What crossbreeding
    # promises is that the coarse layers carry the silhouette; where colour lives depends on the model (demo64 set
    # it in the fine layers, demo64x48 sets it with the shape in the coarse ones; models/README.md).
    from sneakergan.edit.state import EditState
    from sneakergan.metrics.diversity import foreground_masks, mask_iou

    r = Renderer(demo, None, model_id=DEMO_NAME)
    seeds = range(16)
    plain = foreground_masks(np.stack(r.render_batch([EditState(model=DEMO_NAME, seed=a, psi=0.7) for a in seeds])))

    def outline_iou(layers: str) -> float:
        mixed = r.render_batch([EditState(model=DEMO_NAME, seed=a, psi=0.7, mixes=((a + 100, layers),))
                                for a in seeds])
        return float(mask_iou(plain, foreground_masks(np.stack(mixed))).mean())

    coarse, fine = outline_iou("coarse"), outline_iou("fine")
    assert coarse < 0.85, coarse
    assert coarse < fine - 0.05, (coarse, fine)
