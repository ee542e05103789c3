"""How much a direction changes the silhouette: a zero vector keeps it, a strong one reshapes it."""

import numpy as np

from sneakergan.edit.directions import Direction, DirectionSet
from sneakergan.edit.effect import silhouette_iou
from sneakergan.edit.render import Renderer
from sneakergan.generate import load_generator
from sneakergan.serve.model_source import build_random_tiny


def test_silhouette_iou_of_a_zero_and_a_strong_direction(tmp_path):
    G = load_generator(build_random_tiny(tmp_path / "tiny"))
    rng = np.random.default_rng(0)
    strong = rng.normal(size=G.w_dim).astype(np.float32)
    dirs = DirectionSet(directions=[
        Direction(id="zero_0", method="sefa", name="Nothing", layers="all", vector=np.zeros(G.w_dim, np.float32),
                  sigma=1.0, order=0),
        Direction(id="strong_0", method="sefa", name="Everything", layers="all", vector=strong / np.linalg.norm(strong),
                  sigma=3.0, order=1)], model="tiny")
    r = Renderer(G, dirs, model_id="tiny")
    iou = silhouette_iou(r, seeds=range(4), amount=5)
    assert iou["zero_0"] == 1.0
    assert iou["strong_0"] < 0.95
