"""Sneaker-likeness statistics: synthetic product shots pass, noise / flat / two-object images do not."""

import numpy as np
import pytest

from sneakergan.metrics.sneaker_stats import measure, summarize
from sneakergan.prepare.synth import render_sneaker


@pytest.fixture(scope="module")
def synth_images():
    return [np.asarray(render_sneaker(s, 64)[0].convert("RGB")) for s in range(40)]


def test_synthetic_sneakers_pass(synth_images):
    s = summarize(synth_images)
    assert s["sneaker_like"] >= 0.95
    assert s["background_white"] > 0.95 and s["single_object"] >= 0.95 and s["sole_contrast"] > 0.05


def test_noise_and_flat_images_fail():
    rng = np.random.default_rng(0)
    noise = [(rng.random((64, 64, 3)) * 255).astype(np.uint8) for _ in range(5)]
    assert summarize(noise)["sneaker_like"] == 0
    grey = np.full((64, 64, 3), 128, np.uint8)
    assert not measure(grey).sneaker_like
    white = np.full((64, 64, 3), 255, np.uint8)
    assert not measure(white).sneaker_like


def test_two_objects_and_missing_sole_fail(synth_images):
    shoe = synth_images[0]
    two = np.full((64, 128, 3), 255, np.uint8)
    two[:, :64], two[:, 64:] = shoe, shoe
    stats = measure(two)
    assert stats.components == 2 and not stats.sneaker_like
    flipped = shoe[::-1].copy()  # upside down: the dark band is at the top
    assert measure(shoe).sole_contrast > measure(flipped).sole_contrast


def test_bad_shape_rejected():
    with pytest.raises(ValueError, match="HxWx3"):
        measure(np.zeros((8, 8)))
