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
    ("64px-f0.125", 8): 16.6,  # 64 px, fmaps 0.125 (channel_base 4096), 8 mapping layers
    ("128px-f0.125", 8): 13.8,
    ("paper256", 4): 1.8,
}

GENERATOR_CONFIGS: dict[str, NetworkConfig] = {
    "64px-f0.125": NetworkConfig(resolution=64, channel_base=4096, channel_max=512, mapping_layers=8),
    "128px-f0.125": NetworkConfig(resolution=128, channel_base=4096, channel_max=512, mapping_layers=8),
    "paper256": get_preset("paper256").network,
    "demo64": get_preset("demo64").network,
    "tiny": get_preset("tiny").network,
}


# The reference's training step on this kind of CPU (REFERENCES.md, core mode, float32, 2 threads): 64 px,
# channel_base 2048, channel_max 128, 2 mapping layers (= demo64), batch 16. 24.1 img/s on 2026-11-25;
# 15.8-18.3 img/s on 2026-12-02 on another machine of the same kind (machines differ by a third).
REFERENCE_TRAIN_IMG_S = {("demo64", 16, "core"): 24.1}


def bench_precisions(requested: str, device: torch.device) -> list[str]:
    """Which precisions a benchmark run measures: 'auto' = fp32 and, side by side, what auto resolves to."""
    from .precision import resolve_precision

    if requested == "auto":
        chosen = resolve_precision("auto", device)
        return ["fp32"] if chosen == "fp32" else ["fp32", chosen]
    return [resolve_precision(requested, device)]


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


def generator_throughput(name: str, batch: int, device: torch.device, seconds: float = 5.0,
                         precision: str = "fp32") -> dict[str, Any]:
    """Images/s of mapping + synthesis (noise const, inference mode) for a named configuration."""
    from .precision import autocast

    torch.manual_seed(0)
    cfg = GENERATOR_CONFIGS[name]
    G = Generator(cfg).to(device).eval()
    z = torch.randn(batch, cfg.z_dim, device=device)

    @torch.inference_mode()
    def run() -> None:
        ws = G.mapping(z)
        with autocast(precision, device):
            G.synthesis(ws, noise_mode="const").float()

    times = _timeit(run, seconds, device)
    img_s = batch / statistics.median(times)
    ref = REFERENCE_GENERATOR_IMG_S.get((name, batch)) if device.type == "cpu" else None
    return {"bench": "generator", "config": name, "batch": batch, "precision": precision, "value": round(img_s, 2),
            "unit": "img/s", "reference": ref, "ratio": round(img_s / ref, 2) if ref else None}


def with_speedups(rows: list[dict[str, Any]], higher_is_better: bool = True) -> list[dict[str, Any]]:
    """Add 'vs_fp32' (speed-up over the fp32 row of the same bench/config/batch) to rows of other precisions."""
    base = {(r["bench"], r["config"], r["batch"]): r["value"] for r in rows if r.get("precision") == "fp32"}
    for r in rows:
        b = base.get((r["bench"], r["config"], r["batch"]))
        if b and r.get("precision") != "fp32" and r["value"]:
            r["vs_fp32"] = round(r["value"] / b if higher_is_better else b / r["value"], 2)
    return rows


def run_generator_benchmarks(device: torch.device, quick: bool = False,
                             precisions: list[str] | None = None) -> list[dict[str, Any]]:
    """Generator throughput for the reference's three CPU configurations plus the demo model, per precision
    (measured alternately, case by case, so a busy machine slows both alike)."""
    cases = [("64px-f0.125", 8), ("128px-f0.125", 8), ("paper256", 4), ("demo64", 1),
             ("demo64", 8)]
    if quick:
        cases = [c for c in cases if c[0] != "paper256"]
    rows = [generator_throughput(n, b, device, seconds=2.0 if quick else 5.0, precision=p)
            for n, b in cases for p in (precisions or ["fp32"])]
    return with_speedups(rows)


def step_trainer(preset: str, mode: str, data: Path, out: Path, threads: int | None, device: str,
                 batch: int | None = None, precision: str = "fp32") -> tuple[Any, Any, Any]:
    """(trainer, reals, labels): a Trainer set up for one of the benchmark's step modes, and one loaded batch.

    mode "core": one G + one D step, no R1 / path length / augmentation (REFERENCES.md's CPU table setting);
    mode "full": the preset's step with lazy regularisers at their real frequency and ADA bgc at p = 0.3.
    """
    from .train.config import resolve_config
    from .train.loop import Trainer

    flags: dict[str, Any] = dict(data=str(data), out=str(out), preset=preset, kimg=1e6, workers=0, threads=threads,
                                 device=device, batch=batch, precision=precision)
    if mode == "core":
        flags.update(gamma=0.0, pl_weight=0.0, style_mix=0.0, aug="none")
    else:
        flags.update(aug="ada", p=0.3, augpipe="bgc")
    tr = Trainer(resolve_config(flags), progress=False)
    real, c = next(tr._loader())
    return tr, real, c


def time_training_step(preset: str, mode: str, data: Path, out: Path, iters: int, threads: int | None,
                       device: str, batch: int | None = None, precision: str = "fp32") -> tuple[int, float, float]:
    """(batch, wall seconds, CPU seconds) per training step on one pre-loaded batch of `data`.

    mode "core": one G + one D step, no R1 / path length / augmentation (REFERENCES.md's CPU table setting);
    mode "full": the preset's step with lazy regularisers at their real frequency and ADA bgc at p = 0.3.
    """
    tr, real, c = step_trainer(preset, mode, data, out, threads, device, batch, precision)
    for _ in range(2):  # warm-up (allocator, oneDNN primitive caches)
        tr._step(real, c)
    n = iters if mode == "core" else max(iters, 16)  # whole lazy-regularisation cycles
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        tr._step(real, c)
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    return tr.cfg.batch, (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def _ddp_rank(rank: int, procs: int, port: int, args: tuple, results: Any) -> None:
    """One rank of `time_training_step_ddp` (spawned): torchrun's environment, one thread, the same timer."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(procs),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    preset, mode, data, out, iters, device, batch, precision = args
    from .allocator import keep_freed_memory

    keep_freed_memory()  # as `sneakergan train` does in each torchrun process
    try:
        results.put((rank, time_training_step(preset, mode, data, out, iters, 1, device, batch, precision)))
        import torch.distributed as dist

        # Rank 0 hosts the rendezvous store: leaving while the other rank still talks to it aborted rank 0 once
        # ("terminate called without an active exception", a clean clone's test run). Only on success: a failed
        # rank must not wait here for one that will never come.
        if dist.is_initialized():
            dist.barrier()
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def time_training_step_ddp(preset: str, mode: str, data: Path, out: Path, iters: int, procs: int,
                           device: str = "cpu", batch: int | None = None,
                           precision: str = "fp32") -> tuple[int, float, float]:
    """`time_training_step` for `procs` processes of one thread each (gloo), as `torchrun --nproc_per_node`.

    Why: on a few CPU cores the step's many small kernels scale badly across threads of one process, while
    processes that each own a core and average gradients once per phase keep both busy. Returns the global batch,
    rank 0's wall seconds per step and its CPU seconds.
    """
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:  # a free port for the rendezvous, on loopback only
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    args = (preset, mode, data, out, iters, device, batch, precision)
    ps = [ctx.Process(target=_ddp_rank, args=(r, procs, port, args, results)) for r in range(procs)]
    for p in ps:
        p.start()
    while any(p.is_alive() for p in ps):
        if any(p.exitcode for p in ps):  # one rank died: the others would wait for it in a collective
            for p in ps:
                p.terminate()
        for p in ps:
            p.join(0.2)
    if any(p.exitcode for p in ps):
        raise RuntimeError(f"a benchmark rank failed (exit codes {[p.exitcode for p in ps]})")
    got = dict(results.get() for _ in ps)
    return got[0]


def noise_dataset(folder: Path, width: int, height: int, count: int = 32) -> Path:
    """A zip of random images: training speed does not depend on what the pixels show."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    path = folder / f"noise{width}x{height}.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
            zf.writestr(f"{i:05d}.png", buf.getvalue())
    return path


def training_throughput(preset: str, device: torch.device, iters: int = 6, mode: str = "core",
                        threads: int | None = None, batch: int | None = None,
                        precision: str = "fp32") -> dict[str, Any]:
    """Images/s of the real training step (see `time_training_step`), with the reference's where it has one."""
    net = get_preset(preset).network
    folder = scratch_dir()
    data = noise_dataset(folder, net.img_width, net.img_height)
    batch, wall, _ = time_training_step(preset, mode, data, folder / "run", iters, threads, str(device), batch,
                                        precision)
    img_s = batch / wall
    ref = REFERENCE_TRAIN_IMG_S.get((preset, batch, mode)) if device.type == "cpu" else None
    return {"bench": f"train {mode}", "config": preset, "batch": batch, "precision": precision,
            "value": round(img_s, 1), "unit": "img/s", "reference": ref,
            "ratio": round(img_s / ref, 2) if ref else None,
            "note": f"{1000 / img_s:.1f} s/kimg, {3.6 * img_s:.0f} kimg/h"}


def edit_latency(preset: str, device: torch.device, n: int = 20, precision: str = "fp32") -> list[dict[str, Any]]:
    """p50/p95 milliseconds to render one edited image, with and without the renderer's caches."""
    import numpy as np

    from .edit.directions import compute_sefa, sample_w
    from .edit.render import Renderer
    from .edit.state import EditState

    torch.manual_seed(0)
    G = Generator(get_preset(preset).network).eval().requires_grad_(False).to(device)
    w = sample_w(G, 1000)
    dirs = compute_sefa(G, "fine", 2, w)
    rows = []
    for label, cache in (("uncached", 0), ("cached", 256)):
        r = Renderer(G, dirs, model_id="bench", cache_size=cache, precision=precision)
        base = EditState(model="bench", seed=1, psi=0.7)
        amounts = iter(np.linspace(-3, 3, n + 8))
        for _ in range(3):  # warm-up: allocations and first-call overheads
            r.render(base.with_edit(dirs[0].id, float(next(amounts))))
        times = []
        for _ in range(n):
            t = time.perf_counter()
            r.render(base.with_edit(dirs[0].id, float(next(amounts))))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t)
        ms = np.array(times) * 1000
        rows.append({"bench": f"edit {label}", "config": preset, "batch": 1, "precision": precision,
                     "value": round(float(np.percentile(ms, 50)), 1), "unit": "ms p50",
                     "note": f"p95 {np.percentile(ms, 95):.1f} ms"})
    return rows


def prepare_throughput(count: int = 40, side: int = 1000, workers: int = 2) -> dict[str, Any]:
    """Images/s of `prepare` on synthetic sneakers saved as side-px JPEGs (a fresh store, nothing cached)."""
    import io

    from .collect.store import Store
    from .prepare.pipeline import PrepareConfig, run_prepare
    from .prepare.synth import render_sneaker

    root = scratch_dir()
    store = Store.open(root / "store", create=True)
    for seed in range(count):
        img, _ = render_sneaker(seed, side)
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "JPEG", quality=90)
        store.add_bytes(buf.getvalue(), source={"kind": "folder", "image_url": f"bench://{seed}"})
    store.close()
    t = time.perf_counter()
    run_prepare(root / "store", root / "out.zip", PrepareConfig(resolution=256, workers=workers))
    img_s = count / (time.perf_counter() - t)
    return {"bench": "prepare", "config": f"{side}px JPEG", "batch": workers, "value": round(img_s, 2),
            "unit": "img/s", "note": f"{count} images, {workers} workers"}


def run_all(device: torch.device, quick: bool = True, precisions: list[str] | None = None) -> list[dict[str, Any]]:
    """Every benchmark of the system, sized to finish in a few minutes on 2 cores with the small presets.

    Each case runs once per precision, back to back, so fp32 and bf16 are compared side by side.
    """
    precs = precisions or ["fp32"]
    rows = run_generator_benchmarks(device, quick=quick, precisions=precs)
    train_rows = []
    for preset, batch, mode in (("tiny", None, "core"), ("demo64", 16, "core"), ("demo64", None, "full")):
        if quick and mode == "full":
            continue
        for p in precs:
            train_rows.append(training_throughput(preset, device, iters=4 if quick else 8, mode=mode, batch=batch,
                                                  precision=p))
    rows.extend(with_speedups(train_rows))
    edit_rows = []
    for preset in ("tiny", "demo64x48"):  # demo64x48: the shipped demo model's network (the editor's target)
        for p in precs:
            edit_rows.extend(edit_latency(preset, device, n=12 if quick else 40, precision=p))
    rows.extend(with_speedups(edit_rows, higher_is_better=False))
    rows.append(prepare_throughput(count=24 if quick else 200))
    return rows


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
