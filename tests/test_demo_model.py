"""The shipped demo model draws sneakers: its samples pass the same image statistics as the synthetic set.

The statistics (sneakergan.metrics.sneaker_stats) check a mostly white background, a darker sole band in the bottom
third of the object and a single connected object. An untrained network of the same shape fails them, so passing
means the model learned sneakers, not just that it runs.
"""

from pathlib import Path

import pytest
import torch

from sneakergan.generate import generate_images, load_generator
from sneakergan.metrics.sneaker_stats import summarize
from sneakergan.modelfile import read_meta
from sneakergan.nets import Generator

DEMO = Path(__file__).resolve().parents[1] / "models" / "demo64.safetensors"
SEEDS = list(range(1000, 1048))


@pytest.fixture(scope="module")
def demo():
    return load_generator(DEMO)


def test_demo_model_is_shipped_small_and_safe():
    assert DEMO.exists(), "models/demo64.safetensors is the shipped demo model"
    size = DEMO.stat().st_size + DEMO.with_suffix(".json").stat().st_size
    assert size < 30e6
    meta = read_meta(DEMO)
    assert meta["nets"] == ["G_ema"] and meta["config"]["resolution"] in (64, 128)
    assert meta["state"]["kimg"] > 0


def test_demo_samples_look_like_sneakers(demo):
    images = [arr for _, arr in generate_images(demo, SEEDS, psi=0.7, batch_size=16)]
    stats = summarize(images)
    assert stats["background_white"] > 0.9, stats
    assert stats["single_object"] > 0.8, stats
    assert stats["sole_contrast"] > 0.05, stats
    assert stats["sneaker_like"] > 0.7, stats
    # varied: different sneakers, not one mode
    mean_colours = torch.tensor([im.reshape(-1, 3).mean(0).tolist() for im in images])
    assert mean_colours.std(0).mean() > 3.0


def test_untrained_network_of_the_same_shape_fails(demo):
    torch.manual_seed(0)
    G = Generator(demo.cfg).eval()
    images = [arr for _, arr in generate_images(G, SEEDS[:16], psi=0.7, batch_size=16)]
    assert summarize(images)["sneaker_like"] < 0.2


def test_demo_directions_are_named(demo):
    import json

    path = DEMO.with_name("demo64.directions.json")
    data = json.loads(path.read_text())
    items = data["directions"] if isinstance(data, dict) else data
    named = [d for d in items if d.get("name") and not d.get("hidden")]
    assert len(named) >= 3
