"""Prepare throughput: images/s for N synthetic sneaker JPEGs (default 1,000 at 1000 px) on W workers.

    .venv/bin/python bench/bench_prepare.py                   # 1,000 images, 2 workers
    .venv/bin/python bench/bench_prepare.py --count 100       # quick run

The store is built once (rendering is slower than preparing) and reused from --store on later runs; each
timed run starts from an empty `prepared` cache, so it measures decode + normalise + features + dedupe +
export, end to end. A second, cached run shows what a re-export (e.g. after curating) costs.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sqlite3
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sneakergan.collect.store import Store  # noqa: E402
from sneakergan.prepare.pipeline import PrepareConfig, run_prepare  # noqa: E402


def _render(args: tuple[int, int]) -> bytes:
    from sneakergan.prepare.synth import render_sneaker

    seed, size = args
    img, _ = render_sneaker(seed, size)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def build_store(root: Path, count: int, size: int, workers: int) -> None:
    """Add `count` synthetic JPEGs of `size` px to the store at `root` (skips those already there)."""
    with Store.open(root) as store:
        have = store.counts()["ok"]
        if have >= count:
            return
        with get_context("fork").Pool(workers) as pool:
            for i, data in enumerate(pool.imap(_render, [(s, size) for s in range(have, count)], chunksize=4)):
                store.add_bytes(data, {"kind": "folder", "image_url": f"synth://{have + i}"}, min_side=64)


def timed(root: Path, out: Path, cfg: PrepareConfig, fresh: bool) -> tuple[float, int]:
    if fresh:
        shutil.rmtree(root / "prepared", ignore_errors=True)
        with sqlite3.connect(root / "manifest.sqlite") as conn:
            conn.execute("DELETE FROM prepared")
    t0 = time.perf_counter()
    result = run_prepare(root, out, cfg)
    return time.perf_counter() - t0, result.kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=1000, help="source image side in pixels")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--store", type=Path, default=None, help="store folder to build once and reuse")
    ap.add_argument("--index-size", type=int, default=100_000, help="hashes for the dedupe-index timing (0: skip)")
    args = ap.parse_args()

    root = args.store or Path(tempfile.gettempdir()) / f"sneakergan-bench-store-{args.count}-{args.size}"
    console = Console()
    t0 = time.perf_counter()
    build_store(root, args.count, args.size, args.workers)
    console.print(f"store {root}: ready in {time.perf_counter() - t0:.1f} s")
    with Store.open(root) as store:
        n = store.counts()["ok"]
    cfg = PrepareConfig(resolution=args.resolution, workers=args.workers, keep_boring=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.zip"
        cold, kept = timed(root, out, cfg, fresh=True)
        warm, _ = timed(root, out, cfg, fresh=False)
    table = Table(title=f"prepare throughput ({n} synthetic {args.size}px JPEGs -> {args.resolution}px)")
    for col in ("run", "workers", "images", "kept", "seconds", "images/s"):
        table.add_column(col, justify="right")
    table.add_row("cold", str(args.workers), str(n), str(kept), f"{cold:.1f}", f"{n / cold:.1f}")
    table.add_row("cached", str(args.workers), str(n), str(kept), f"{warm:.1f}", f"{n / warm:.1f}")
    console.print(table)
    if args.index_size:
        console.print(index_table(args.index_size))


def index_table(n: int) -> Table:
    """Dedupe time on n pHashes: the multi-index lookup, not all n^2/2 pairs."""
    import random

    from sneakergan.prepare.dedupe import dedupe

    rng = random.Random(0)
    base = [rng.getrandbits(64) for _ in range(n // 2)]
    hashes = list(base)
    for h in base:  # every other image is a near-copy (a few bits flipped) of one already seen
        for bit in rng.sample(range(64), rng.randint(0, 6)):
            h ^= 1 << bit
        hashes.append(h)
    table = Table(title=f"near-duplicate index ({n:,} hashes, half of them near-copies)")
    for col in ("threshold", "seconds", "hashes/s", "kept"):
        table.add_column(col, justify="right")
    for threshold in (6, 8, 10):
        t0 = time.perf_counter()
        kept = len(dedupe(hashes, [0.0] * n, threshold=threshold).kept)
        dt = time.perf_counter() - t0
        table.add_row(str(threshold), f"{dt:.1f}", f"{n / dt:,.0f}", f"{kept:,}")
    return table


if __name__ == "__main__":
    main()
