"""Training throughput per preset on the current device: img/s, s/kimg and kimg/hour in one table.

Two modes per preset:
  core  one G step + one D step, non-saturating loss, Adam, no R1 / path length / augmentation: the setting of
        REFERENCES.md's "reference training speed on a 2-core CPU" table, so the numbers compare directly
        (reference: 24.1 img/s for 64 px, channel_base 2048, channel_max 128, 2 mapping layers, batch 16 = demo64).
  full  the preset's real training step: lazy R1 / path length as configured, ADA bgc at p = 0.3.
Reals come from one pre-loaded batch (data decoding runs in a worker process during training anyway).

    .venv/bin/python bench/bench_train.py [--presets tiny,demo64] [--iters 8] [--threads N] [--device auto]
                                          [--precision auto|fp32|bf16|fp16] [--repeats 2] [--procs 1,2]

--procs 1,2 also times the step as `torchrun --nproc_per_node 2 ... --threads 1` runs it: two processes of one
thread each, averaging gradients (gloo). On a 2-core CPU that keeps both cores busier than two threads of one process.

The script waits as `train` does (a short OpenMP spin, sneakergan/threads.py) unless the environment sets
OMP_WAIT_POLICY or GOMP_SPINCOUNT; OMP_WAIT_POLICY=default measures under libgomp's own default spin (the
reference's code sets no policy, so presumably what REFERENCES.md's reference figures ran under).

--precision auto (the default) measures fp32 and bf16 (where the device has it) alternately, --repeats times, so
both see the same machine; the table shows every repeat and the speed-up of each over fp32.

--reference DIR (a local checkout of NVlabs/stylegan2-ada-pytorch, not shipped) adds, in each repeat of core mode, a row
for the reference's own step with the same shapes, batch and threads (bench/reference_step.py, a subprocess), and
our speed over it: the issue's "x times the reference's step" measured in the same minute instead of against
REFERENCES.md's figures from other sittings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sneakergan.threads import describe_wait_policy, set_wait_policy  # noqa: E402

set_wait_policy()  # before torch, as `train` does (sneakergan/threads.py)

import torch  # noqa: E402

from sneakergan.bench import bench_precisions, noise_dataset, time_training_step, time_training_step_ddp  # noqa: E402
from sneakergan.generate import resolve_device  # noqa: E402
from sneakergan.nets import get_preset  # noqa: E402


def main() -> None:
    from sneakergan.allocator import keep_freed_memory

    keep_freed_memory()  # as the CLI does (SNEAKERGAN_SYSTEM_MALLOC=1 measures without it)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,demo64")
    ap.add_argument("--modes", default="core,full")
    ap.add_argument("--iters", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=None, help="override every preset's batch")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--procs", default="1", help="comma-separated process counts (>1: one thread each, gloo)")
    ap.add_argument("--reference", type=Path, default=None,
                    help="checkout of NVlabs/stylegan2-ada-pytorch: time its core step side by side (CPU only)")
    args = ap.parse_args()
    if args.reference is not None:  # fail before minutes of our own rows, not after
        from reference_step import checkout_problem  # bench/, next to this script

        problem = checkout_problem(args.reference)
        if problem:
            raise SystemExit(f"error: --reference: {problem}")
    precs = bench_precisions(args.precision, resolve_device(args.device))
    dev = "cuda" if (args.device == "auto" and torch.cuda.is_available()) else args.device
    dev_name = torch.cuda.get_device_name() if dev.startswith("cuda") else f"CPU x{args.threads or os.cpu_count()} threads"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    # The OpenMP wait policy moves one process's 2-thread step by 20-25% on an idle machine (PASSIVE against a
    # spin), so the table says which one it ran under.
    malloc = "system malloc" if os.environ.get("SNEAKERGAN_SYSTEM_MALLOC") == "1" else "malloc keeps freed memory"
    print(f"device: {dev_name}; torch {torch.__version__}; load average at start {load:.1f}; "
          f"OpenMP wait: {describe_wait_policy()}; {malloc}")
    header = (f"{'preset':10s} {'res':>4s} {'batch':>5s} {'mode':5s} {'procs':>5s} {'prec':5s} {'img/s':>8s} {'s/kimg':>8s} "
              f"{'kimg/h':>8s} {'img/cpu-s':>9s} {'vs fp32':>7s}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for name in args.presets.split(","):
            net = get_preset(name).network
            res = net.resolution
            data = noise_dataset(tmp_path, net.img_width, net.img_height, count=64)
            for mode in args.modes.split(","):
                for rep in range(args.repeats):
                    fp32, ours = None, {}
                    for procs in (int(n) for n in args.procs.split(",")):
                        for prec in precs:
                            run = tmp_path / f"run-{name}-{mode}-{prec}-{procs}"
                            if procs > 1:
                                batch, sec, cpu = time_training_step_ddp(name, mode, data, run, args.iters, procs,
                                                                         args.device, args.batch, prec)
                            else:
                                batch, sec, cpu = time_training_step(name, mode, data, run, args.iters, args.threads,
                                                                     args.device, args.batch, prec)
                            ips = batch / sec
                            fp32 = ips if (prec == "fp32" and procs == 1) else fp32
                            speedup = f"{ips / fp32:7.2f}" if fp32 and not (prec == "fp32" and procs == 1) else f"{'-':>7s}"
                            print(f"{name:10s} {res:4d} {batch:5d} {mode:5s} {procs:5d} {prec:5s} {ips:8.1f} "
                                  f"{1000 / ips:8.1f} {ips * 3.6:8.1f} {batch / cpu / procs:9.1f} {speedup}", flush=True)
                            ours[(procs, prec)] = ips
                    if args.reference is not None and mode == "core":
                        _reference_row(args, name, res, batch, ours)
    print("reference (REFERENCES.md, same CPU, idle, 2 threads, core mode): 64 px cb2048/cm128/2 mapping, batch 16: "
          "24.1 img/s (>= 12 img/cpu-s); 32 px same widths: 36.2 img/s.\n"
          "vs fp32: against the 1-process fp32 row of the same repeat.\n"
          "img/cpu-s (images per CPU-second of this process, per process) is robust to other load; on an idle machine img/s is "
          "about threads x img/cpu-s x parallel efficiency.")


def _reference_row(args: argparse.Namespace, name: str, res: int, batch: int, ours: dict) -> None:
    """Time the reference's core step in a subprocess (its own imports, same threads and environment) and print it
    as a row, then our rows of this repeat over it."""
    threads = args.threads or torch.get_num_threads()
    cmd = [sys.executable, str(Path(__file__).with_name("reference_step.py")), "--reference-dir", str(args.reference),
           "--preset", name, "--batch", str(batch), "--iters", str(args.iters), "--threads", str(threads), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "reference step failed")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    ips = r["img_s"]
    print(f"{name:10s} {res:4d} {batch:5d} {'core':5s} {1:5d} {'ref':5s} {ips:8.1f} {1000 / ips:8.1f} {ips * 3.6:8.1f} "
          f"{batch / r['cpu']:9.1f} {'-':>7s}", flush=True)
    ratios = ", ".join(f"{prec} x{procs} {v / ips:.2f}" for (procs, prec), v in ours.items())
    print(f"{'':10s} ours / reference, this repeat: {ratios}", flush=True)


if __name__ == "__main__":
    main()
