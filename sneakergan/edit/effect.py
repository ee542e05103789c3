"""How much a direction visibly changes the picture, so an editor can leave out sliders that do nothing.

A direction's effect is the mean absolute pixel change (0-255 scale) between its -amount and +amount renders,
averaged over a few seeds. Directions found without labels (SeFa on tiny layer ranges, a zero vector from a
degenerate model) can move w without moving a pixel; a slider that does nothing looks broken.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from .render import Renderer
from .state import MAX_AMOUNT, EditState

MIN_VISIBLE_EFFECT = 0.5  # mean |pixel change| between -amount and +amount below which a slider looks dead


def _pair_renders(renderer: Renderer, ids: list[str], seeds: list[int], amount: float,
                  psi: float) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """For each direction, the (-amount, +amount) renders of every seed, in one uncached bulk synthesis: this runs
    at server start and for model cards, where seconds count and the editor's caches should not fill with probes."""
    amount = min(abs(amount), MAX_AMOUNT)
    states = [EditState(model=renderer.model_id, seed=s, psi=psi, edits=((did, sign * amount),))
              for did in ids for s in seeds for sign in (-1, 1)]
    arrays = renderer.render_ws(torch.stack([renderer.ws(st) for st in states]), batch=32)
    per = 2 * len(seeds)
    return [[(arrays[k * per + i], arrays[k * per + i + 1]) for i in range(0, per, 2)] for k in range(len(ids))]


def direction_effects(renderer: Renderer, ids: Iterable[str] | None = None, seeds: Iterable[int] = (0, 1, 2),
                      amount: float = 2.0, psi: float = 0.7) -> dict[str, float]:
    """{direction id: mean absolute pixel change between -amount and +amount sigma} over `seeds`."""
    ids = list(renderer.directions) if ids is None else list(ids)
    seeds = list(seeds)
    if not ids or not seeds:
        return {}
    pairs = _pair_renders(renderer, ids, seeds, amount, psi)
    return {did: float(np.mean([np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in per_seed]))
            for did, per_seed in zip(ids, pairs)}


def visible_ids(effects: dict[str, float], threshold: float = MIN_VISIBLE_EFFECT) -> set[str]:
    """The directions whose effect reaches `threshold`."""
    return {did for did, e in effects.items() if e >= threshold}


def silhouette_iou(renderer: Renderer, ids: Iterable[str] | None = None, seeds: Iterable[int] = range(8),
                   amount: float = 5.0, psi: float = 0.7) -> dict[str, float]:
    """{direction id: mean IoU of the shoe's outline (foreground mask) between -amount and +amount sigma}.

    1 means the direction leaves the silhouette alone (a colourway slider); below ~0.75 it visibly reshapes it.
    """
    from ..metrics.diversity import foreground_masks, mask_iou

    ids = list(renderer.directions) if ids is None else list(ids)
    seeds = list(seeds)
    if not ids or not seeds:
        return {}
    out = {}
    for did, per_seed in zip(ids, _pair_renders(renderer, ids, seeds, amount, psi)):
        a = foreground_masks(np.stack([x for x, _ in per_seed]))
        b = foreground_masks(np.stack([y for _, y in per_seed]))
        out[did] = float(np.mean(mask_iou(a, b)))
    return out
