"""Query and path parameters shared by several routers, and the one function that turns them into a state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path as PathParam, Query

from ...edit.state import EditState
from ..engine import BadInput, Engine

MAX_SEED = 2**32 - 1

Seed = Annotated[int, PathParam(ge=0, le=MAX_SEED, description="Seed in [0, 2^32)")]
StateQ = Annotated[str | None, Query(max_length=4096, description="Edit state token (share links).")]
SeedQ = Annotated[int | None, Query(ge=0, le=MAX_SEED)]
LatentQ = Annotated[str | None, Query(max_length=64, description="Projected latent id.")]
PsiQ = Annotated[float | None, Query(description="Truncation psi.")]
EditQ = Annotated[list[str], Query(max_length=200, description="DIRECTION:AMOUNT (sigma), repeated.")]
MixQ = Annotated[list[str], Query(max_length=200, description="SEED:coarse|middle|fine, repeated.")]
CrossQ = Annotated[str | None, Query(max_length=4096, description="Token of a crossbred design to edit.")]


def state_of(engine: Engine, state: str | None, seed: int | None, latent: str | None, psi: float | None,
             edit: list[str], mix: list[str], cross: str | None = None) -> EditState:
    """A state token, or the editor's parameters, as a checked state."""
    if state is not None:
        if any(v is not None for v in (seed, latent, psi, cross)) or edit or mix:
            raise BadInput("give either a state token or seed/latent/cross/psi/edit/mix parameters, not both")
        return engine.decode(state)
    return engine.state_from_params(seed, latent, psi, edit, mix, cross)
