"""Improved precision and recall (Kynkäänniemi et al. 2019).

Each set's manifold is approximated by the union of balls around its points, each ball's radius being
the distance to the point's k-th nearest neighbour within the same set. Precision is the fraction of
generated samples inside the real manifold; recall the fraction of real samples inside the generated one.
Distances are computed in row/column blocks so memory stays O(block^2) however many samples there are.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_tensor(x: np.ndarray | torch.Tensor, device: str | torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32).to(device)


def knn_radii(points: torch.Tensor, k: int = 3, batch_size: int = 4096) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour among the others (self excluded)."""
    n = points.shape[0]
    if n <= k:
        raise ValueError(f"need more than k={k} points to compute k-NN radii, got {n}")
    radii = []
    for start in range(0, n, batch_size):
        rows = points[start : start + batch_size]
        dist = torch.cat([torch.cdist(rows, points[c : c + batch_size]) for c in range(0, n, batch_size)], dim=1)
        # The point itself is at distance 0: the (k+1)-th smallest distance is the k-th neighbour.
        radii.append(dist.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def manifold_coverage(
    manifold: torch.Tensor, radii: torch.Tensor, probes: torch.Tensor, batch_size: int = 4096
) -> float:
    """Fraction of `probes` lying inside at least one ball (manifold[j], radii[j])."""
    inside = inside_manifold(manifold, radii, probes, batch_size)
    return int(inside.sum().item()) / probes.shape[0]


def inside_manifold(
    manifold: torch.Tensor, radii: torch.Tensor, probes: torch.Tensor, batch_size: int = 4096
) -> torch.Tensor:
    """bool [P]: which `probes` lie inside at least one ball (manifold[j], radii[j]) -- e.g. which real images a
    generated set recalls, to look at the ones it misses."""
    inside = torch.zeros(probes.shape[0], dtype=torch.bool, device=probes.device)
    for start in range(0, probes.shape[0], batch_size):
        rows = probes[start : start + batch_size]
        hit = torch.zeros(rows.shape[0], dtype=torch.bool, device=probes.device)
        for c in range(0, manifold.shape[0], batch_size):
            dist = torch.cdist(rows, manifold[c : c + batch_size])
            hit |= (dist <= radii[c : c + batch_size][None, :]).any(dim=1)
        inside[start : start + batch_size] = hit
    return inside


def precision_recall(
    real: np.ndarray | torch.Tensor,
    fake: np.ndarray | torch.Tensor,
    k: int = 3,
    batch_size: int = 4096,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """Improved (precision, recall) of `fake` features [M, D] against `real` features [N, D]."""
    real_t = _as_tensor(real, device)
    fake_t = _as_tensor(fake, device)
    if real_t.ndim != 2 or fake_t.ndim != 2 or real_t.shape[1] != fake_t.shape[1]:
        raise ValueError(f"feature shapes differ: {tuple(real_t.shape)} vs {tuple(fake_t.shape)}")
    precision = manifold_coverage(real_t, knn_radii(real_t, k, batch_size), fake_t, batch_size)
    recall = manifold_coverage(fake_t, knn_radii(fake_t, k, batch_size), real_t, batch_size)
    return precision, recall
