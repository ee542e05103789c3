"""Benchmarks of the whole system behind `sneakergan bench` (the `bench/` scripts print the same rows).

Each function measures one thing on the current device and returns rows of plain dicts, so the command can print
one Rich table and write JSON for the record. Times are wall-clock medians over repeated runs after a warm-up.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .nets import Generator, NetworkConfig, get_preset

# The reference implementation on a 2-core CPU of this kind (../shared/REFERENCES.md, float32, noise const).
REFERENCE_GENERATOR_IMG_S = {
    ("64px-fmaps0.125-map8", 8): 16.6,
    ("128px-fmaps0.125-map8", 8): 13.8,
    ("paper256", 4): 1.8,
}

GENERATOR_CONFIGS: dict[str, NetworkConfig] = {
    "64px-fmaps0.125-map8": NetworkConfig(resolution=64, channel_base=4096, channel_max=512, mapping_layers=8),
    "128px-fmaps0.125-map8": NetworkConfig(resolution=128, channel_base=4096, channel_max=512, mapping_layers=8),
    "paper256": get_preset("paper256").network,
    "demo64": get_preset("demo64").network,
    "tiny": get_preset("tiny").network,
}


def machine_info(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def _timeit(fn: Callable[[], Any], seconds: float, device: torch.device, min_runs: int = 3) -> list[float]:
    fn()  # warm-up: allocations, oneDNN primitive caches, cuDNN autotuning
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
    return times


def generator_throughput(name: str, batch: int, device: torch.device, seconds: float = 5.0) -> dict[str, Any]:
    """Images/s of mapping + synthesis (noise const, inference mode) for a named configuration."""
    torch.manual_seed(0)
    cfg = GENERATOR_CONFIGS[name]
    G = Generator(cfg).to(device).eval()
    z = torch.randn(batch, cfg.z_dim, device=device)

    @torch.inference_mode()
    def run() -> None:
        G.synthesis(G.mapping(z), noise_mode="const")

    times = _timeit(run, seconds, device)
    img_s = batch / statistics.median(times)
    ref = REFERENCE_GENERATOR_IMG_S.get((name, batch)) if device.type == "cpu" else None
    return {"bench": "generator", "config": name, "batch": batch, "img/s": round(img_s, 2),
            "reference img/s": ref, "ratio": round(img_s / ref, 2) if ref else None}


def run_generator_benchmarks(device: torch.device, quick: bool = False) -> list[dict[str, Any]]:
    """Generator throughput for the reference's three CPU configurations plus the demo model."""
    cases = [("64px-fmaps0.125-map8", 8), ("128px-fmaps0.125-map8", 8), ("paper256", 4), ("demo64", 1),
             ("demo64", 8)]
    if quick:
        cases = [c for c in cases if c[0] != "paper256"]
    return [generator_throughput(n, b, device, seconds=2.0 if quick else 5.0) for n, b in cases]


def time_rows(rows: list[dict[str, Any]]) -> str:
    """Plain-text table (for bench scripts that print without Rich)."""
    if not rows:
        return "(no rows)"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    for r in rows:
        lines.append("  ".join(str(r.get(c, "") if r.get(c) is not None else "-").ljust(widths[c]) for c in cols))
    return "\n".join(lines)


def scratch_dir() -> Path:
    """A temporary folder for benchmarks that need files."""
    return Path(tempfile.mkdtemp(prefix="sneakergan-bench-"))
