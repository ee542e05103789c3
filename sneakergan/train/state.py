"""Random-generator state saved in checkpoints, so a resume continues bit-exactly."""

from __future__ import annotations

import base64

import numpy as np
import torch


def rng_state() -> dict[str, str]:
    """The global torch (and CUDA) generator states as base64 text for a checkpoint's JSON."""
    state = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = base64.b64encode(torch.cuda.get_rng_state().numpy().tobytes()).decode()
    return state


def set_rng_state(state: dict[str, str]) -> None:
    """Inverse of rng_state: an exact resume continues the same random stream."""
    torch.set_rng_state(torch.from_numpy(np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.from_numpy(np.frombuffer(base64.b64decode(state["cuda"]), dtype=np.uint8).copy()))
