"""Where one training step's time goes: the step, then each of its aten calls replayed alone, summed by operator and
(for convolutions) by shape with the GFLOP/s each reaches.

Why not the profiler: on this 2-core CPU its per-op split moved with whatever it instrumented (it once blamed a
bias-gradient cast for 15% of the step; timed directly, the alternatives changed nothing). Replaying the recorded
calls one by one times each kernel the way a micro-benchmark would; what the replays do not add up to is the
step's overhead (Python, autograd, dispatch of ~2,000 small calls, caches gone cold between kernels).

    .venv/bin/python bench/bench_step_breakdown.py [--preset demo64] [--batch 16] [--precision bf16] [--threads 2]
                                                   [--mode core|full] [--top 16]

core: one G and one D step, no regularisers or augmentation (bench_train's "core", REFERENCES.md's setting);
full: the preset's step with ADA bgc at p 0.3, as bench_train's "full" (the one recorded step may skip the lazy
regularisers).
Pause any training while it runs: it measures the machine, not the model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sneakergan.threads import describe_wait_policy, set_wait_policy  # noqa: E402

set_wait_policy()  # before torch, as `train` does

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from sneakergan.allocator import keep_freed_memory  # noqa: E402
from sneakergan.bench import noise_dataset, step_trainer  # noqa: E402
from sneakergan.nets import get_preset  # noqa: E402


def _copy(a):
    """A private copy of an argument that keeps its memory layout (channels_last stays channels_last)."""
    if isinstance(a, torch.Tensor):
        return a.detach().clone(memory_format=torch.preserve_format)
    if isinstance(a, (list, tuple)):
        return type(a)(_copy(x) for x in a)
    return a


class _Recorder(TorchDispatchMode):
    """Records every aten call (with copies of its inputs) made while active, forward and backward."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls.append((func, _copy(args), {k: _copy(v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)


def _time_call(func, args, kwargs, repeats: int = 3) -> float:
    func(*args, **kwargs)  # warm: oneDNN picks and caches its kernel on the first call
    start = time.perf_counter()
    for _ in range(repeats):
        func(*args, **kwargs)
    return (time.perf_counter() - start) / repeats


def _conv_key(func, args) -> tuple[str, str, str]:
    """(kind, input shape and layout, weight shape) of a convolution call."""
    if str(func) == "aten.convolution.default":
        x, w, transposed = args[0], args[1], args[6]
        kind = "transposed (input grad)" if transposed else "forward"
    else:  # convolution_backward(grad_out, input, weight, ..., output_mask)
        x, w, mask = args[1], args[2], args[-1]
        grads = [name for name, wanted in zip(("input", "weight", "bias"), mask) if wanted]
        kind = " + ".join(grads) + " grad"
    layout = "CL" if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else ""
    return kind, f"{tuple(x.shape)} {str(x.dtype).removeprefix('torch.')} {layout}".strip(), str(tuple(w.shape))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo64")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="core", choices=("core", "full"))
    ap.add_argument("--top", type=int, default=16)
    args = ap.parse_args()
    keep_freed_memory()  # as `sneakergan train` does
    torch.set_num_threads(args.threads)
    console = Console(width=160)

    net = get_preset(args.preset).network
    tmp = Path(tempfile.mkdtemp(prefix="sneakergan-breakdown-"))
    data = noise_dataset(tmp, net.img_width, net.img_height, count=max(64, args.batch))
    trainer, real, c = step_trainer(args.preset, args.mode, data, tmp / "run", args.threads, "cpu", args.batch,
                                    args.precision)

    for _ in range(3):
        trainer._step(real, c)
    rounds = []
    for _ in range(4):
        start = time.perf_counter()
        for _ in range(5):
            trainer._step(real, c)
        rounds.append((time.perf_counter() - start) / 5)
    step = sorted(rounds)[len(rounds) // 2]

    recorder = _Recorder()
    with recorder:
        trainer._step(real, c)

    by_op: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    by_conv: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for func, fargs, fkwargs in recorder.calls:
        try:
            seconds = _time_call(func, fargs, fkwargs)
        except RuntimeError:  # a call that needs the graph it ran in (rare); left out of the sum
            continue
        name = str(func).removeprefix("aten.")
        by_op[name][0] += 1
        by_op[name][1] += seconds
        if "convolution" in name:
            counter = FlopCounterMode(display=False)
            with counter:
                func(*fargs, **fkwargs)
            row = by_conv[_conv_key(func, fargs)]
            row[0] += 1
            row[1] += seconds
            row[2] += counter.get_total_flops()

    replayed = sum(t for _, t in by_op.values())
    conv_time = sum(r[1] for r in by_conv.values())
    conv_flops = sum(r[2] for r in by_conv.values())
    console.print(f"{args.preset} batch {args.batch}, {args.mode} step, {args.precision}, {args.threads} thread(s); "
                  f"OpenMP wait: {describe_wait_policy()}")
    console.print(f"step {step * 1e3:.1f} ms ({args.batch / step:.1f} img/s); {len(recorder.calls)} aten calls, "
                  f"replayed alone {replayed * 1e3:.1f} ms ({replayed / step:.0%} of the step); convolutions "
                  f"{conv_time * 1e3:.1f} ms ({conv_time / step:.0%}) at {conv_flops / conv_time / 1e9:.0f} GFLOP/s: "
                  f"with everything else free the step would run at {args.batch / conv_time:.1f} img/s")

    ops = Table(title="by operator (replayed alone)")
    for col in ("operator", "calls", "ms", "share of step"):
        ops.add_column(col, justify="left" if col == "operator" else "right")
    for name, (n, t) in sorted(by_op.items(), key=lambda kv: -kv[1][1])[: args.top]:
        ops.add_row(name, str(int(n)), f"{t * 1e3:.1f}", f"{t / step:.1%}")
    ops.add_row("not in any replay (overhead)", "", f"{(step - replayed) * 1e3:.1f}", f"{1 - replayed / step:.1%}")
    console.print(ops)

    convs = Table(title="convolutions by shape (slowest first)")
    for col in ("kind", "input", "weight", "calls", "ms", "GFLOP/s"):
        convs.add_column(col, justify="left" if col in ("kind", "input", "weight") else "right")
    for (kind, x, w), (n, t, fl) in sorted(by_conv.items(), key=lambda kv: -kv[1][1])[: args.top]:
        convs.add_row(kind, x, w, str(int(n)), f"{t * 1e3:.1f}", f"{fl / t / 1e9:.0f}")
    console.print(convs)


if __name__ == "__main__":
    main()
