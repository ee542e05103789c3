"""Load test of the website: `sneakergan serve` on 127.0.0.1, N concurrent clients for a bounded time.

    python bench/bench_serve.py [--model PATH] [--clients 20] [--seconds 30] [--max-requests 100000]

Each client loops over a mix like a visitor's: page views (home, permalink, gallery, editor), gallery pages (the JSON
page plus a few of its images) and edit renders (a slider being dragged: the same sneaker with a new amount each
time, so nearly every render misses the caches). Prints requests/s, p50/p95 latency per endpoint, errors, and
the server's batching counters. Goal on 2 cores with the demo model: zero errors, edit render p50 under 150 ms.
"""

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str | None, port: int, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sneakergan.cli", "serve", "--port", str(port), *extra]
    if model:
        cmd += ["--model", model]
    log = tempfile.NamedTemporaryFile("w+", prefix="bench_serve.", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    proc.log_path = log.name  # type: ignore[attr-defined]
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {Path(log.name).read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not come up within 120 s")


async def client(c: httpx.AsyncClient, rng: random.Random, directions: list[str], stop_at: float, budget: list[int],
                 lat: dict[str, list[float]], errors: dict[str, int]) -> None:
    seed = rng.randrange(2**32)
    slider = directions[rng.randrange(len(directions))] if directions else None
    amount = 0.0

    async def get(kind: str, url: str) -> httpx.Response | None:
        if budget[0] <= 0 or time.perf_counter() > stop_at:
            return None
        budget[0] -= 1
        t0 = time.perf_counter()
        try:
            r = await c.get(url)
        except httpx.HTTPError as e:
            errors[f"{kind}: {type(e).__name__}"] += 1
            return None
        lat[kind].append(time.perf_counter() - t0)
        if r.status_code >= 400:
            errors[f"{kind}: HTTP {r.status_code}"] += 1
        return r

    while time.perf_counter() < stop_at and budget[0] > 0:
        x = rng.random()
        if x < 0.25:
            page = rng.choice(["/", f"/s/{rng.randrange(2**32)}", "/gallery", f"/edit?seed={seed}"])
            await get("page", page)
        elif x < 0.45:
            r = await get("gallery api", f"/api/gallery?page={rng.randrange(200)}&size=60")
            if r is not None and r.status_code == 200:
                for item in rng.sample(r.json()["items"], 4):
                    await get("gallery image", item["image"])
        else:
            # A slider drag: amounts move in small steps, as the editor's debounced requests do.
            amount = max(-5.0, min(5.0, round(amount + rng.choice([-0.3, -0.2, 0.2, 0.3]), 1)))
            q = f"seed={seed}&psi=0.7" + (f"&edit={slider}:{amount}" if slider and amount else "")
            await get("edit render", f"/api/render.webp?{q}")


async def run(base: str, clients: int, seconds: float, max_requests: int) -> tuple[dict, dict, float, int]:
    lat: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    budget = [max_requests]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
        directions = [d["id"] for d in (await c.get("/api/directions")).json()["directions"]]
        t0 = time.perf_counter()
        stop_at = t0 + seconds
        await asyncio.gather(*[client(c, random.Random(i), directions, stop_at, budget, lat, errors)
                               for i in range(clients)])
        elapsed = time.perf_counter() - t0
    return lat, errors, elapsed, max_requests - budget[0]


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else (xs[0] if xs else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model file (default: what `sneakergan serve` picks)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--max-requests", type=int, default=100_000)
    ap.add_argument("--server-arg", action="append", default=[], help="extra `serve` option, e.g. --server-arg=--max-batch=8")
    args = ap.parse_args()

    port = free_port()
    proc = start_server(args.model, port, args.server_arg)
    base = f"http://127.0.0.1:{port}"
    try:
        health = httpx.get(f"{base}/api/health").json()
        print(f"model {health['model']} {health['size'][0]}x{health['size'][1]}"
              f"{' (FALLBACK: ' + health['banner'] + ')' if health['fallback'] else ''}, "
              f"{health['gallery']} pre-rendered; {args.clients} clients for {args.seconds:.0f} s; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f} before the run")
        lat, errors, elapsed, n = asyncio.run(run(base, args.clients, args.seconds, args.max_requests))
        health = httpx.get(f"{base}/api/health").json()
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"\n{n} requests in {elapsed:.1f} s = {n / elapsed:.1f} requests/s, "
          f"{sum(errors.values())} errors\n")
    print(f"{'endpoint':<16}{'count':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for kind in ("page", "gallery api", "gallery image", "edit render"):
        xs = lat.get(kind, [])
        if xs:
            print(f"{kind:<16}{len(xs):>8}{len(xs) / elapsed:>9.1f}{pct(xs, 50) * 1e3:>9.1f}{pct(xs, 95) * 1e3:>9.1f}"
                  f"{max(xs) * 1e3:>9.1f}")
    for k, v in sorted(errors.items()):
        print(f"  error {k}: {v}")
    p = health["pool"]
    print(f"\nrender pool: {p['rendered']} images in {p['batches']} batches (mean batch {p['mean_batch']:.2f}), "
          f"{p['skipped']} skipped, {p['rejected']} shed (503); cache hits {health['cache']['hits']}, "
          f"misses {health['cache']['misses']}")


if __name__ == "__main__":
    main()
