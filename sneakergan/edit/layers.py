"""Layer ranges: which ws indices 'coarse', 'middle', 'fine', 'all' or an explicit "a-b" range mean for a model.

StyleGAN's convention splits the ws by the resolution they act on: coarse 4-8 px (pose, shape), middle 16-32 px
(panels, details), fine 64 px and up (colour, texture). ws index i acts on resolution 2^(i // 2 + 2). Models
smaller than 64 px would have no fine layers under that rule, so the split scales down: fine starts at
min(64, R) and middle at min(16, R / 2), so a 32 px model reads coarse 4-8 | middle 16 | fine 32 and a 16 px
model 4 | 8 | 16.
"""

from __future__ import annotations

import re

NAMED_RANGES = ("all", "coarse", "middle", "fine")
MAX_WS = 64  # far above any real model (1024 px has 18); bounds explicit ranges before a model is known
_RANGE_RE = re.compile(r"(\d{1,2})-(\d{1,2})")


def is_layer_spec(spec: object) -> bool:
    """Whether `spec` is a well-formed range name or "a-b" (a <= b, inclusive) before any model is known."""
    if not isinstance(spec, str):
        return False
    if spec in NAMED_RANGES:
        return True
    m = _RANGE_RE.fullmatch(spec)
    return bool(m) and int(m.group(1)) <= int(m.group(2)) < MAX_WS


def ws_resolution(index: int) -> int:
    """The resolution (longer side) that ws index `index` mainly acts on."""
    return 2 ** (index // 2 + 2)


def layer_indices(spec: str, num_ws: int) -> list[int]:
    """The ws indices a layer spec covers for a model with `num_ws` ws (resolution 2^(num_ws // 2 + 1))."""
    if not is_layer_spec(spec):
        raise ValueError(f"unknown layer range {spec!r}: use {', '.join(NAMED_RANGES)} or a range like 0-3")
    if spec == "all":
        return list(range(num_ws))
    m = _RANGE_RE.fullmatch(spec)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if b >= num_ws:
            raise ValueError(f"layer range {spec!r} is out of bounds: this model has ws 0-{num_ws - 1}")
        return list(range(a, b + 1))
    resolution = ws_resolution(num_ws - 1)
    fine_start = min(64, resolution)
    middle_start = min(16, resolution // 2)
    lo, hi = {"coarse": (0, middle_start), "middle": (middle_start, fine_start),
              "fine": (fine_start, 1 << 30)}[spec]
    return [i for i in range(num_ws) if lo <= ws_resolution(i) < hi]


def describe_ranges(num_ws: int) -> dict[str, str]:
    """{'coarse': '0-3', ...} for help texts."""
    out = {}
    for name in NAMED_RANGES:
        idx = layer_indices(name, num_ws)
        out[name] = f"{idx[0]}-{idx[-1]}" if idx else "(none)"
    return out
