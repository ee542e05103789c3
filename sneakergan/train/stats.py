"""Training statistics summed on the device and read once per tick.

Reading a CUDA tensor on the host (`float(t)`) waits for the GPU to finish; doing it for every loss at every
step serialises the host and the device. The sums stay tensors until `read()`, which copies them all at once.
"""

from __future__ import annotations

import torch


class TickStats:
    """Running sums of named scalar tensors; `read()` gives their means as floats and starts over."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, stats: dict[str, torch.Tensor | float]) -> None:
        """Accumulate without synchronising: tensors stay where they are."""
        for k, v in stats.items():
            t = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v))
            self._sums[k] = self._sums[k] + t.to(self._sums[k].device) if k in self._sums else t
            self._counts[k] = self._counts.get(k, 0) + 1

    def read(self) -> dict[str, float]:
        """Means since the last read (one host copy for all of them)."""
        if not self._sums:
            return {}
        keys = list(self._sums)
        device = self._sums[keys[0]].device
        values = torch.stack([self._sums[k].to(device).reshape(()) for k in keys]).cpu().tolist()
        out = {k: v / self._counts[k] for k, v in zip(keys, values)}
        self._sums, self._counts = {}, {}
        return out
