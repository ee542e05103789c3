"""Run a hostile corpus through one entry point in a fresh subprocess and report error, time and peak memory.

A subprocess because memory is the thing measured: `ru_maxrss` of a fresh interpreter is a clean peak, and a case
that hangs or balloons is killed by the timeout instead of taking the test session down with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_RUNNER = r"""
import importlib, json, resource, sys, time
spec = json.loads(sys.argv[1])
mod, _, name = spec["func"].partition(":")
func = getattr(importlib.import_module(mod), name)
kwargs = spec.get("kwargs") or {}
import torch
torch.set_num_threads(1)
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if spec.get("warmup") is not None:
    func(*spec["warmup"], **kwargs)  # imports and first-call costs are not the hostile file's
base = peak_mb()
out = {}
for case, args in spec["cases"].items():
    t0 = time.perf_counter()
    try:
        func(*args, **kwargs)
        res = {"ok": True}
    except BaseException as e:  # everything is reported: the test decides what was acceptable
        res = {"ok": False, "type": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
               "msg": str(e)}
    res["seconds"] = time.perf_counter() - t0
    out[case] = res
print("RESULT " + json.dumps({"base_mb": base, "peak_mb": peak_mb(), "cases": out}))
"""


def run_corpus(func: str, cases: dict[str, list], warmup: list | None = None, kwargs: dict | None = None,
               timeout: float = 180) -> dict:
    """Call `module:function(*args, **kwargs)` for every case in one subprocess; returns base/peak MB and results."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"),
                                                         os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    spec = json.dumps({"func": func, "cases": cases, "warmup": warmup, "kwargs": kwargs})
    proc = subprocess.run([sys.executable, "-c", _RUNNER, spec], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    # Shown with `pytest -s` (or on failure): what each case cost.
    print(f"\n{func}: peak {result['peak_mb']:.0f} MB after warm-up {result['base_mb']:.0f} MB")
    for case, res in result["cases"].items():
        print(f"  {case:32s} {res['seconds']:6.2f} s  {res.get('type', 'accepted')}")
    return result


def snapshot_tree(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under root: compare before and after to prove nothing
    was written, changed or removed."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def assert_one_line_errors(result: dict, expected: dict[str, str], error: str, max_seconds: float) -> None:
    """Every case raised `error` (or a subclass) with a one-line message containing its expected text, in time."""
    for case, want in expected.items():
        res = result["cases"][case]
        assert not res["ok"], f"{case}: was accepted"
        assert error in res["mro"], f"{case}: {res['type']}: {res['msg'][:300]}"
        assert "\n" not in res["msg"], f"{case}: message is not one line: {res['msg'][:300]}"
        assert want.lower() in res["msg"].lower(), f"{case}: {res['msg'][:300]!r} lacks {want!r}"
        assert res["seconds"] < max_seconds, f"{case}: took {res['seconds']:.1f} s"


def read_train_dataset(path: str, use_labels: bool = False) -> dict:
    """Open a training dataset and read every item, as a training epoch would (corpus entry point)."""
    from sneakergan.train.dataset import ImageDataset

    ds = ImageDataset(path, use_labels=use_labels)
    for i in range(len(ds)):
        ds[i]
    return ds.skipped


def read_metrics_dataset(path: str) -> None:
    """Open a metrics dataset and read every batch (corpus entry point)."""
    from sneakergan.metrics.data import ImageDataset

    with ImageDataset(path) as ds:
        for _ in ds.iter_batches(4):
            pass
