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


def direction_effects(renderer: Renderer, ids: Iterable[str] | None = None, seeds: Iterable[int] = (0, 1, 2),
                      amount: float = 2.0, psi: float = 0.7) -> dict[str, float]:
    """{direction id: mean absolute pixel change between -amount and +amount sigma} over `seeds`."""
    ids = list(renderer.directions) if ids is None else list(ids)
    seeds = list(seeds)
    amount = min(abs(amount), MAX_AMOUNT)
    if not ids or not seeds:
        return {}
    states = [EditState(model=renderer.model_id, seed=s, psi=psi, edits=((did, sign * amount),))
              for did in ids for s in seeds for sign in (-1, 1)]
    # One uncached bulk synthesis: this runs at server start, where seconds count and the editor's caches should
    # not fill with probe images.
    ws = torch.stack([renderer.ws(st) for st in states])
    arrays = renderer.render_ws(ws, batch=32)
    out = {}
    per = 2 * len(seeds)
    for k, did in enumerate(ids):
        chunk = arrays[k * per: (k + 1) * per]
        diffs = [np.abs(chunk[i].astype(np.int16) - chunk[i + 1].astype(np.int16)).mean() for i in range(0, per, 2)]
        out[did] = float(np.mean(diffs))
    return out


def visible_ids(effects: dict[str, float], threshold: float = MIN_VISIBLE_EFFECT) -> set[str]:
    """The directions whose effect reaches `threshold`."""
    return {did for did, e in effects.items() if e >= threshold}


def silhouette_iou(renderer: Renderer, ids: Iterable[str] | None = None, seeds: Iterable[int] = range(8),
                   amount: float = 5.0, psi: float = 0.7) -> dict[str, float]:
    """{direction id: mean IoU of the shoe's outline (foreground mask) between -amount and +amount sigma}.

    1 means the direction leaves the silhouette alone (a colourway slider); below ~0.75 it visibly reshapes it.
    """
    from ..metrics.diversity import foreground_masks

    ids = list(renderer.directions) if ids is None else list(ids)
    seeds = list(seeds)
    amount = min(abs(amount), MAX_AMOUNT)
    if not ids or not seeds:
        return {}
    states = [EditState(model=renderer.model_id, seed=s, psi=psi, edits=((did, sign * amount),))
              for did in ids for s in seeds for sign in (-1, 1)]
    masks = foreground_masks(np.stack(renderer.render_ws(torch.stack([renderer.ws(st) for st in states]), batch=32)))
    out = {}
    per = 2 * len(seeds)
    for k, did in enumerate(ids):
        m = masks[k * per: (k + 1) * per]
        a, b = m[0::2], m[1::2]
        inter = (a & b).sum(axis=(1, 2))
        union = np.maximum((a | b).sum(axis=(1, 2)), 1)
        out[did] = float(np.mean(inter / union))
    return out
