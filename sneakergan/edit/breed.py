"""Crossbreeding: a row of children of two parent designs, each taking some of parent b's coarse / middle / fine ws.

The person chooses how much of parent b each level should take (0 = all parent a, 1 = all parent b); the children
scatter around that choice so a row shows variety, deterministically: the same parents, blend, row and count
always give the same children (so a row can be shared and reloaded). Child 0 is the choice itself.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .state import Cross, EditState, EditStateError

MAX_CHILDREN = 12


def children(a: EditState, b: EditState, blend: tuple[float, float, float] = (0.5, 0.5, 0.5), count: int = 6,
             variety: float = 0.3, row: int = 0) -> list[EditState]:
    """`count` children of `a` and `b`; child i's blend is `blend` moved by up to +-`variety` per level."""
    if a.model != b.model:
        raise EditStateError("both parents must come from the same model")
    if not 1 <= count <= MAX_CHILDREN:
        raise EditStateError(f"count must be in [1, {MAX_CHILDREN}]")
    if not 0.0 <= variety <= 1.0:
        raise EditStateError("variety must be in [0, 1]")
    # The row's randomness comes from the parents and the row number, never from global state.
    digest = hashlib.sha256(f"{a.encode()}|{b.encode()}|{row}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    base = np.clip(np.asarray(blend, dtype=np.float64), 0.0, 1.0)
    out = []
    for i in range(count):
        jitter = np.zeros(3) if i == 0 else rng.uniform(-variety, variety, size=3)
        t = np.round(np.clip(base + jitter, 0.0, 1.0), 3)
        out.append(EditState(model=a.model, psi=a.psi, noise=a.noise, cross=Cross(a, b, tuple(float(x) for x in t))))
    return out
