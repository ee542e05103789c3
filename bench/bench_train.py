"""Training throughput per preset on the current device: img/s, s/kimg and kimg/hour in one table.

Two modes per preset:
  core  one G step + one D step, non-saturating loss, Adam, no R1 / path length / augmentation: the setting of
        REFERENCES.md's "reference training speed on a 2-core CPU" table, so the numbers compare directly
        (reference: 24.1 img/s for 64 px, channel_base 2048, channel_max 128, 2 mapping layers, batch 16 = demo64).
  full  the preset's real training step: lazy R1 / path length as configured, ADA bgc at p = 0.3.
Reals come from one pre-loaded batch (data decoding runs in a worker process during training anyway).

    .venv/bin/python bench/bench_train.py [--presets tiny,demo64] [--iters 8] [--threads N] [--device auto]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see sneakergan/train/commands.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sneakergan.nets import get_preset  # noqa: E402
from sneakergan.train.config import resolve_config  # noqa: E402
from sneakergan.train.loop import Trainer  # noqa: E402


def noise_dataset(folder: Path, resolution: int, count: int = 64) -> Path:
    path = folder / f"noise{resolution}.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(buf, "PNG")
            zf.writestr(f"{i:05d}.png", buf.getvalue())
    return path


def measure(preset: str, mode: str, data: Path, out: Path, iters: int, threads: int | None, device: str,
            batch: int | None) -> tuple[int, float, float]:
    flags = dict(data=str(data), out=str(out), preset=preset, kimg=1e6, workers=0, threads=threads, device=device,
                 batch=batch)
    if mode == "core":
        flags.update(gamma=0.0, pl_weight=0.0, style_mix=0.0, aug="none")
    else:
        flags.update(aug="ada", p=0.3, augpipe="bgc")
    tr = Trainer(resolve_config(flags), progress=False)
    real, c = next(tr._loader())
    for _ in range(2):  # warm-up (allocator, oneDNN primitive caches)
        tr._step(real, c)
    # Whole lazy-regularisation cycles in full mode so R1 / path length are counted at their real frequency.
    n = iters if mode == "core" else max(iters, 16)
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        tr._step(real, c)
    if tr.device.type == "cuda":
        torch.cuda.synchronize()
    return tr.cfg.batch, (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,demo64")
    ap.add_argument("--modes", default="core,full")
    ap.add_argument("--iters", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=None, help="override every preset's batch")
    args = ap.parse_args()
    dev = "cuda" if (args.device == "auto" and torch.cuda.is_available()) else args.device
    dev_name = torch.cuda.get_device_name() if dev.startswith("cuda") else f"CPU x{args.threads or os.cpu_count()} threads"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {dev_name}; torch {torch.__version__}; load average at start {load:.1f}")
    header = (f"{'preset':10s} {'res':>4s} {'batch':>5s} {'mode':5s} {'img/s':>8s} {'s/kimg':>8s} {'kimg/h':>8s} "
              f"{'img/cpu-s':>9s}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for name in args.presets.split(","):
            res = get_preset(name).network.resolution
            data = noise_dataset(tmp_path, res)
            for mode in args.modes.split(","):
                batch, sec, cpu = measure(name, mode, data, tmp_path / f"run-{name}-{mode}", args.iters, args.threads,
                                     args.device, args.batch)
                ips = batch / sec
                print(f"{name:10s} {res:4d} {batch:5d} {mode:5s} {ips:8.1f} {1000 / ips:8.1f} {ips * 3.6:8.1f} "
                      f"{batch / cpu:9.1f}", flush=True)
    print("reference (REFERENCES.md, same CPU, idle, 2 threads, core mode): 64 px cb2048/cm128/2 mapping, batch 16: "
          "24.1 img/s (>= 12 img/cpu-s); 32 px same widths: 36.2 img/s.\n"
          "img/cpu-s (images per CPU-second of this process) is robust to other load; on an idle machine img/s is "
          "about threads x img/cpu-s x parallel efficiency.")


if __name__ == "__main__":
    main()
