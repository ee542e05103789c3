"""Numeric precision of a run: which dtype the big products compute in, chosen once per device.

`auto` means bf16 where the hardware has native bf16 units (CPUs with AMX or AVX512-BF16, CUDA devices that
support it) and fp32 elsewhere. Master weights, optimiser state, EMA, loss reductions and the regularisers'
penalties stay fp32 whatever is chosen: precision is a property of a run, never of a checkpoint.

    prec = resolve_precision("auto", torch.device("cpu"))   # "bf16" on this project's CPUs
    with autocast(prec, device):
        img = G.synthesis(ws)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU has AMX-BF16 or AVX512-BF16 (read from /proc/cpuinfo; False where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"amx_bf16", "avx512_bf16"} & flags)
    except OSError:
        pass
    return False


def resolve_precision(name: str, device: torch.device | str) -> str:
    """'fp32', 'bf16' or 'fp16' for a requested precision on a device; one-line ValueError for what cannot run."""
    device = torch.device(device)
    if name not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA device (on CPUs use bf16)")
    return name


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype products run in under a resolved precision."""
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def float32_region(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off: for the small products whose precision matters more than their cost (mapping, styles,
    demodulation coefficients, minibatch statistics). A no-op outside autocast."""
    return torch.autocast(device_type, enabled=False)


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str) -> Iterator[None]:
    """Autocast for a resolved precision ('fp32' is a no-op)."""
    device = torch.device(device)
    if precision == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=compute_dtype(precision)):
        yield
