"""How fast the store verifies and files images (decode + sha256 + SQLite), per image size.

    .venv/bin/python bench/bench_collect_store.py
"""

from __future__ import annotations

import io
import tempfile
import time

import numpy as np
from PIL import Image

from sneakergan.collect.store import Store


def jpeg(side: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(side // 8, side // 8, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((side, side), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    print(f"{'side':>6} {'images':>7} {'KiB/img':>8} {'img/s':>8} {'dup img/s':>10}")
    for side, n in ((256, 200), (1024, 60), (2048, 20)):
        data = [jpeg(side, i) for i in range(n)]
        with tempfile.TemporaryDirectory() as tmp, Store.open(tmp) as store:
            t0 = time.perf_counter()
            for i, d in enumerate(data):
                store.add_bytes(d, {"kind": "urls", "image_url": f"https://x.test/{i}.jpg"})
            new = n / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            for i, d in enumerate(data):  # same bytes, new place: hash + link only
                store.add_bytes(d, {"kind": "urls", "image_url": f"https://y.test/{i}.jpg"})
            dup = n / (time.perf_counter() - t0)
        print(f"{side:>6} {n:>7} {sum(map(len, data)) / n / 1024:>8.0f} {new:>8.1f} {dup:>10.1f}")


if __name__ == "__main__":
    main()
