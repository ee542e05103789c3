"""Edit-render latency (p50 / p95, one image) per preset, with and without the renderer's caches, and projection steps/s.

    .venv/bin/python bench/bench_edit.py                       # CPU: tiny, demo64, small, paper256
    .venv/bin/python bench/bench_edit.py --device cuda --presets tiny,demo64,small,paper256,paper512,stylegan2
    .venv/bin/python bench/bench_edit.py --threads 1,2,4         # compare torch thread counts (CPU)

Scenarios, each a sequence of renders a person dragging one slider would cause (the amount changes every frame,
so the finished-image cache never hits):
  uncached       Renderer(cache_size=0): mapping + every block, every time
  fine slider    cached; a SeFa 'fine' direction moves: the early blocks come from the cache
  coarse slider  cached; a 'coarse' direction moves: only mapping and unchanged styles are re-used
  batch8/img     8 different seeds in one render_batch call, time per image (the server's batching)
Networks are randomly initialised: latency does not depend on the weights.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sneakergan.edit.directions import compute_sefa, sample_w
from sneakergan.edit.project import ProjectConfig, project
from sneakergan.edit.render import Renderer
from sneakergan.edit.state import EditState
from sneakergan.nets import Discriminator, Generator, preset


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, n: int, dev: torch.device) -> np.ndarray:
    out = []
    for i in range(n):
        _sync(dev)
        t = time.perf_counter()
        fn(i)
        _sync(dev)
        out.append(time.perf_counter() - t)
    return np.array(out) * 1000


def bench_render(name: str, dev: torch.device, n: int) -> list[tuple[str, str, float, float]]:
    torch.manual_seed(0)
    G = Generator(preset(name)).eval().requires_grad_(False).to(dev)
    w = sample_w(G, 1000)
    dirs = compute_sefa(G, "fine", 2, w) + compute_sefa(G, "coarse", 2, w)
    fine, coarse = dirs[0].id, dirs[2].id
    amounts = np.linspace(-3, 3, n + 3)
    rows = []

    def scenario(label: str, renderer: Renderer, direction: str) -> None:
        base = EditState(model="b", seed=1, psi=0.7)
        renderer.render(base)
        for a in amounts[:3]:  # warm-up (allocator, first-call overheads)
            renderer.render(base.with_edit(direction, float(a) + 0.01))
        t = timed(lambda i: renderer.render(base.with_edit(direction, float(amounts[3 + i]))), n, dev)
        rows.append((name, label, float(np.percentile(t, 50)), float(np.percentile(t, 95))))

    scenario("uncached", Renderer(G, dirs, model_id="b", cache_size=0), fine)
    scenario("fine slider (cached)", Renderer(G, dirs, model_id="b"), fine)
    scenario("coarse slider (cached)", Renderer(G, dirs, model_id="b"), coarse)
    r = Renderer(G, dirs, model_id="b", cache_size=0)
    r.render_batch([EditState(model="b", seed=s) for s in range(8)])
    t = timed(lambda i: r.render_batch([EditState(model="b", seed=100 * i + s) for s in range(8)]), max(3, n // 4),
              dev) / 8
    rows.append((name, "batch8 per image (uncached)", float(np.percentile(t, 50)), float(np.percentile(t, 95))))
    return rows


def bench_project(name: str, dev: torch.device, steps: int) -> tuple[str, float, float]:
    torch.manual_seed(0)
    cfg = preset(name)
    G = Generator(cfg).eval().requires_grad_(False).to(dev)
    D = Discriminator(cfg).eval().requires_grad_(False).to(dev)
    with torch.no_grad():
        target = G(torch.randn(1, G.z_dim, device=dev), noise_mode="const")
    speeds = []
    for d in (None, D):
        project(G, target, D=d, config=ProjectConfig(steps=2, w_samples=1000))  # warm-up
        _sync(dev)
        t = time.perf_counter()
        project(G, target, D=d, config=ProjectConfig(steps=steps, w_samples=1000))
        _sync(dev)
        speeds.append(steps / (time.perf_counter() - t))
    return name, speeds[0], speeds[1]


def main() -> None:
    from sneakergan.allocator import keep_freed_memory

    keep_freed_memory()  # as the CLI does (SNEAKERGAN_SYSTEM_MALLOC=1 measures without it)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,demo64,small,paper256")
    ap.add_argument("--project-presets", default="tiny,demo64")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=30, help="renders per scenario")
    ap.add_argument("--steps", type=int, default=30, help="projection steps to time")
    ap.add_argument("--threads", default="", help="comma-separated torch thread counts to compare (CPU)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    thread_counts = [int(t) for t in args.threads.split(",") if t] or [torch.get_num_threads()]
    print(f"device {dev}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else
                             f" ({torch.get_num_threads()} torch threads by default)"))
    for threads in thread_counts:
        torch.set_num_threads(threads)
        print(f"\n## edit-render latency, one image, {threads} torch thread(s)  [ms]")
        print(f"{'preset':<10} {'scenario':<30} {'p50':>9} {'p95':>9}")
        for name in [p for p in args.presets.split(",") if p]:
            for preset_name, label, p50, p95 in bench_render(name, dev, args.n):
                print(f"{preset_name:<10} {label:<30} {p50:9.2f} {p95:9.2f}", flush=True)
        print(f"\n## projection, {threads} torch thread(s)  [steps/s]")
        print(f"{'preset':<10} {'pixel loss':>12} {'pixel + D':>12}")
        for name in [p for p in args.project_presets.split(",") if p]:
            n, a, b = bench_project(name, dev, args.steps)
            print(f"{n:<10} {a:12.1f} {b:12.1f}", flush=True)


if __name__ == "__main__":
    main()
