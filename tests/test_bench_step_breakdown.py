"""The call recorder behind `bench/bench_step_breakdown.py`: it sees the backward pass too, and tells a
convolution's weight gradient from its forward and its input gradient (no timing asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from sneakergan.nets.conv import conv2d

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "bench_step_breakdown.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_step_breakdown", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dtype, expected", [
    (torch.float32, {"forward", "input + weight grad"}),  # autograd's own backward: one call for both
    (torch.bfloat16, {"forward", "input + weight grad"}),  # sneakergan's bf16 backward: oneDNN's, bf16 weights
])
def test_recorder_sees_forward_and_backward_convolutions(dtype, expected):
    bench = _load()
    x = torch.randn(2, 4, 8, 8).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(6, 4, 3, 3, requires_grad=True)
    recorder = bench._Recorder()
    with recorder:
        conv2d(x, w, None, stride=2, padding=1).float().square().sum().backward()
    kinds = {bench._conv_key(f, a)[0] for f, a, _ in recorder.calls if "convolution" in str(f)}
    assert kinds == expected


def test_recorder_sees_the_transposed_input_gradient_of_a_double_backward():
    # Where R1 / path length differentiate the gradient again, the bf16 input gradient is a transposed convolution
    # of the float32 weights (so it has a derivative of its own) and the weight gradient a call of its own.
    bench = _load()
    x = torch.randn(2, 4, 8, 8).to(torch.bfloat16).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(6, 4, 3, 3, requires_grad=True)
    recorder = bench._Recorder()
    with recorder:
        (g,) = torch.autograd.grad(conv2d(x, w, None, stride=2, padding=1).float().square().sum(), x, create_graph=True)
        g.float().square().sum().backward()
    kinds = {bench._conv_key(f, a)[0] for f, a, _ in recorder.calls if "convolution" in str(f)}
    assert {"forward", "transposed (input grad)", "weight grad"} <= kinds


def test_recorded_calls_replay_what_the_step_computed():
    bench = _load()
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.randn(6, 4, 3, 3, requires_grad=True)
    recorder = bench._Recorder()
    with recorder:
        conv2d(x, w, None, stride=2, padding=1).square().sum().backward()
    # The recorded inputs are private copies: replaying a call gives what the step computed.
    func, args, kwargs = next(c for c in recorder.calls if str(c[0]) == "aten.convolution.default")
    expected = torch.nn.functional.conv2d(x.detach(), w.detach(), None, 2, 1)
    assert torch.allclose(func(*args, **kwargs), expected, atol=1e-5)
    assert bench._time_call(func, args, kwargs, repeats=1) > 0
