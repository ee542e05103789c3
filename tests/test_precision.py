"""bf16 is correct, not just fast: resolution of --precision, images, gradients, a short training run, checkpoints.

The bounds stated here are the project's promise for bf16 (README): images within about a third of a uint8 level
on average (p99 <= 4 levels) of fp32, every loss term's gradients within ~10% (relative norm) of the reference's
fp32 gradients, and a short training run whose losses track the fp32 run's tick by tick.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sneakergan.generate import generate_images, load_generator
from sneakergan.interop.nvlabs import read_snapshot
from sneakergan.modelfile import load_checkpoint
from sneakergan.nets import Generator, preset
from sneakergan.nets.conv import conv2d, conv2d_lrelu
from sneakergan.nets.layers import _conv, bias_act, fir_taps, polyphase_weight, upfirdn2d
from sneakergan.precision import autocast, compute_dtype, cpu_has_native_bf16, resolve_precision
from sneakergan.prepare.synth import write_synth_dataset
from sneakergan.serve.model_source import DEMO_NAME
from sneakergan.train.config import resolve_config
from sneakergan.train.loop import Trainer, read_log
from sneakergan.train.loss import LossConfig, StyleGAN2Loss
from sneakergan.train.mixed import MixedPrecision

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "nvlabs"
DEMO = ROOT / "models" / DEMO_NAME

pytestmark = pytest.mark.usefixtures("one_thread")


def test_resolve_precision():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", cpu)
    assert compute_dtype("bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        resolve_config({"data": "x", "out": "y", "precision": "half"})


@pytest.mark.parametrize("pad,up,down,gain", [((2, 2, 2, 2), 1, 1, 1.0), ((1, 1, 1, 1), 1, 2, 1.0),
                                                ((1, 2, 1, 2), 1, 1, 4.0), ((3, 0, 1, 2), 1, 2, 2.0)])
def test_channels_last_fir_is_the_same_filter(pad, up, down, gain):
    # The channels-last maps of the bf16 path resample with depthwise convolutions; in fp32 they must agree with
    # the banded matrix products of the default layout to rounding, values and gradients.
    f = fir_taps()
    x = torch.randn(2, 5, 12, 10)
    a_in = x.clone().requires_grad_(True)
    b_in = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    a = upfirdn2d(a_in, f, up=up, down=down, pad=pad, gain=gain)
    b = upfirdn2d(b_in, f, up=up, down=down, pad=pad, gain=gain)
    assert b_in.is_contiguous(memory_format=torch.channels_last) and a.shape == b.shape
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(a)
    (a * g).sum().backward()
    (b * g).sum().backward()
    torch.testing.assert_close(b_in.grad, a_in.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pad,down", [((1, 1, 1, 1), 2), ((2, 2, 2, 2), 1), ((3, 0, 1, 2), 2)])
def test_channels_last_fir_double_backward(pad, down):
    # R1 differentiates the FIR's gradient once more: the depthwise passes' own backward must be exact to second order
    # (float64 gradgradcheck), and the second-order gradient must be the default layout's.
    f = fir_taps()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda t: upfirdn2d(t, f, down=down, pad=pad), (x,))
    second = []
    for inp in (x, x.detach().contiguous().requires_grad_(True)):
        y = upfirdn2d(inp, f, down=down, pad=pad)
        (g,) = torch.autograd.grad(y.square().sum(), inp, create_graph=True)
        second.append(torch.autograd.grad(g.square().sum(), inp)[0])
    torch.testing.assert_close(second[0], second[1])


@pytest.mark.parametrize("clamp", [256.0, 0.5, None])
@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0)])
def test_fused_convolution_activation_is_the_separate_ops(clamp, stride, padding):
    # The discriminator's bf16 layers run conv + bias + clamp as one oneDNN primitive and leaky ReLU in place:
    # bit for bit the separate ops, forward, gradients and R1's double backward (clamp 0.5 makes the clamp act).
    torch.manual_seed(0)
    x0 = torch.randn(4, 8, 12, 10).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w0, b0 = (torch.randn(6, 8, 3, 3) / 5).contiguous(memory_format=torch.channels_last), torch.randn(6)
    results = []
    for fused in (True, False):
        x, w, b = x0.clone().requires_grad_(True), w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        if fused:
            y = conv2d_lrelu(x, w, b, stride, padding, 0.2, clamp)
            assert type(y.grad_fn).__name__ == "_Conv2dLReLUBackward"
        else:
            y = bias_act(conv2d(x, w, b, stride=stride, padding=padding), None, "lrelu", clamp=clamp)
        probe = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
        (gx,) = torch.autograd.grad((y.float() * probe).sum(), x, create_graph=True)
        gx.float().square().sum().backward()
        results.append((y.detach(), gx.detach(), w.grad, b.grad))
    assert results[0][0].is_contiguous(memory_format=torch.channels_last)
    if clamp == 0.5:
        assert (results[1][0].abs() == 0.5).any()  # the clamp acted somewhere
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("clamp", [256.0, 0.5, None])
def test_in_place_bias_activation_is_the_separate_ops(clamp):
    # The synthesis layers' bf16 bias + leaky ReLU + clamp make one tensor (clamp first, both in place): bit for bit
    # the separate ops, forward, gradients of the map and bias, and a double backward (path length).
    torch.manual_seed(0)
    x0 = torch.randn(4, 8, 12, 10).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    b0 = torch.randn(8)
    results = []
    for fused in (True, False):
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        if fused:
            y = bias_act(x, b, "lrelu", clamp=clamp)
            assert type(y.grad_fn).__name__ == "_BiasLReLUBackward"  # the one-tensor path was taken
        else:
            y = torch.nn.functional.leaky_relu(x + b.to(x.dtype).reshape(1, -1, 1, 1), 0.2)
            y = y if clamp is None else torch.nn.functional.hardtanh(y, -clamp, clamp)
        probe = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
        (gx,) = torch.autograd.grad((y.float() * probe).sum(), x, create_graph=True)
        (gx.float().square().sum() + (y.float() * probe).sum()).backward()
        results.append((y.detach(), gx.detach(), x.grad, b.grad))
    assert results[0][0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("shape", [(2, 5, 4, 4), (3, 4, 6, 8), (1, 2, 1, 3)])
def test_polyphase_upsampling_is_the_transposed_convolution(shape):
    # bf16 inference upsamples with one 2x2 convolution of four phases + pixel_shuffle instead of the stride-2
    # transposed convolution: the same sums (float64: exact to rounding), values and shape, FIR included.
    x = torch.randn(*shape, dtype=torch.float64)
    w = torch.randn(7, shape[1], 3, 3, dtype=torch.float64)
    f = fir_taps().double()
    a = _conv(x, w, up=True, groups=1, resample_filter=f)
    b = _conv(x, w, up=True, groups=1, resample_filter=f, wp=polyphase_weight(w))
    assert a.shape == b.shape == (shape[0], 7, 2 * shape[2], 2 * shape[3])
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    # channels-last bf16 (the layout it runs in) stays within bf16 rounding of the float64 result
    xb = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    c = _conv(xb, w.to(torch.bfloat16), up=True, groups=1, resample_filter=f.to(torch.bfloat16),
              wp=polyphase_weight(w.to(torch.bfloat16)))
    assert (c.double() - a).abs().max() < 0.05 * a.abs().max()


def test_bf16_inference_upsamples_by_polyphase_and_matches_fp32(monkeypatch):
    # The bf16 CPU inference path runs channels-last, upsampling in polyphase form where the channels are many
    # (here from 8x8 up) and by the transposed conv elsewhere (the 4x4 input); the images stay within bf16
    # rounding of the fp32 ones (the generator the bench and `--precision bf16` run).
    import dataclasses

    import torch.nn.functional as F

    import sneakergan.nets.layers as layers

    torch.manual_seed(0)
    G = Generator(dataclasses.replace(preset("tiny"), channel_base=4096, channel_max=128)).eval()
    z = torch.randn(4, G.z_dim)
    calls = {"transposed": [], "polyphase": []}

    def spy(kind, fn):
        def run(x, *args, **kwargs):
            calls[kind].append((x.shape[-2:], x.is_contiguous(memory_format=torch.channels_last)))
            return fn(x, *args, **kwargs)
        return run

    with torch.inference_mode():
        ws = G.mapping(z)
        ref = G.synthesis(ws, noise_mode="const")
        monkeypatch.setattr(layers, "conv_transpose2d", spy("transposed", layers.conv_transpose2d))
        monkeypatch.setattr(F, "pixel_shuffle", spy("polyphase", F.pixel_shuffle))
        with autocast("bf16", torch.device("cpu")):
            out = G.synthesis(ws, noise_mode="const").float()
    assert calls["transposed"] == [(torch.Size([4, 4]), True)]
    assert calls["polyphase"] == [(torch.Size([9, 9]), True), (torch.Size([17, 17]), True)]  # 2x2 conv outputs
    err = (out - ref).abs()
    # measured 1.0% and 2.1%
    assert err.mean() < 0.02 * ref.abs().mean() and err.max() < 0.04 * ref.abs().max(), (err.mean(), err.max())


@pytest.mark.skipif(not DEMO.with_suffix(".safetensors").exists(), reason="the demo model is not shipped here")
def test_bf16_images_within_the_stated_bound_of_fp32():
    G = load_generator(DEMO)
    seeds = list(range(16))
    a = np.stack([x for _, x in generate_images(G, seeds, psi=0.7, precision="fp32")]).astype(int)
    b = np.stack([x for _, x in generate_images(G, seeds, psi=0.7, precision="bf16")]).astype(int)
    d = np.abs(a - b)
    assert 0 < d.mean() < 1.0, d.mean()  # measured 0.40 levels of 255 (32 seeds)
    assert np.percentile(d, 99) <= 4 and d.max() <= 24


def _snapshot_loss(channels_last: bool):
    _, nets, _ = read_snapshot(FIXTURE / "nvlabs-tiny.pkl", nets=("G", "D"))
    G, D = nets["G"].train().requires_grad_(True), nets["D"].train().requires_grad_(True)
    if channels_last:
        MixedPrecision("bf16", torch.device("cpu")).setup(G, D)
    cfg = LossConfig(r1_gamma=1.0, pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2, style_mix=0.0, noise_mode="const")
    return G, D, StyleGAN2Loss(G, D, None, cfg)


@pytest.mark.parametrize("term", ["Gmain", "Gpl", "Dmain", "Dr1"])
def test_bf16_gradients_track_the_reference(term):
    ref = dict(np.load(FIXTURE / "nvlabs-tiny.grads.npz"))
    G, D, loss = _snapshot_loss(channels_last=True)
    z, real = torch.from_numpy(ref["z"]).float(), torch.from_numpy(ref["real"]).float()
    with autocast("bf16", "cpu"):
        if term == "Gmain":
            total, module = loss.g_main(z, None)[0], G
        elif term == "Gpl":
            total, module = loss.g_pl(z, None, 1.0, noise=torch.from_numpy(ref["pl_noise"]).float())[0], G
        elif term == "Dmain":
            with torch.no_grad():
                fake = G(z, noise_mode="const")
            total, module = loss.d_main(real, None, fake, None)[0], D
        else:
            total, module = loss.d_r1(real, None, 1.0)[0], D
    assert total.dtype == torch.float32  # loss reductions stay fp32
    total.backward()
    assert float(total.detach()) == pytest.approx(float(ref[f"loss_{term}"]), rel=0.03)
    got, want = [], []
    for name, p in module.named_parameters():
        assert p.dtype == torch.float32 and (p.grad is None or p.grad.dtype == torch.float32)
        w = torch.from_numpy(ref[f"{term}/{name}"]).double().flatten()
        got.append(torch.zeros_like(w) if p.grad is None else p.grad.double().flatten())
        want.append(w)
    got, want = torch.cat(got), torch.cat(want)
    rel = float((got - want).norm() / want.norm())
    assert rel < 0.12, f"{term}: bf16 gradients off by {rel:.3f} (relative norm; measured 0.03-0.07)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same short tiny run (all phases: R1, path length, mixing, fixed augmentation) in fp32 and in bf16."""
    root = tmp_path_factory.mktemp("prec")
    data = write_synth_dataset(root / "synth.zip", 64, 32, seed=0)
    out = {}
    for prec in ("fp32", "bf16"):
        cfg = resolve_config(dict(data=str(data), out=str(root / prec), preset="tiny", kimg=0.128, snap=0.128, tick=0.032,
                                  workers=0, pl_weight=2.0, pl_interval=2, r1_interval=2, style_mix=0.9, aug="fixed",
                                  p=0.2, grid_size=4, threads=1, precision=prec, seed=0))
        torch.manual_seed(1)
        tr = Trainer(cfg, progress=False)
        assert tr.mp.precision == prec
        res = tr.run()
        out[prec] = (tr, read_log(cfg.out), res)
    return out


def test_bf16_training_follows_fp32(runs):
    (_, log32, _), (_, log16, _) = runs["fp32"], runs["bf16"]
    assert [r["cur_nimg"] for r in log32] == [r["cur_nimg"] for r in log16] == [32, 64, 96, 128]
    for a, b in zip(log32, log16):
        for key in ("loss_G", "loss_D", "loss_pl"):
            assert abs(a[key] - b[key]) < 0.06, (a["kimg"], key, a[key], b[key])  # measured <= 0.015
        for key in ("D_real", "D_fake"):
            assert abs(a[key] - b[key]) < 0.15, (a["kimg"], key, a[key], b[key])
    # Where training ended up: G_ema's images from both runs agree far better than two different models would.
    G32, G16 = runs["fp32"][0].G_ema, runs["bf16"][0].G_ema
    a = np.stack([x for _, x in generate_images(G32, list(range(8)), psi=1.0)]).astype(float)
    b = np.stack([x for _, x in generate_images(G16, list(range(8)), psi=1.0)]).astype(float)
    c = np.stack([x for _, x in generate_images(G32, list(range(8, 16)), psi=1.0)]).astype(float)
    assert np.abs(a - b).mean() < 0.25 * np.abs(a - c).mean()


def test_bf16_checkpoints_are_precision_neutral(runs):
    tr, _, res = runs["bf16"]
    ckpt = load_checkpoint(res.checkpoint, nets=("G_ema", "G", "D"))
    for name in ("G_ema", "G", "D"):
        for t in ckpt.nets[name].state_dict().values():
            assert t.dtype == torch.float32 and t.is_contiguous()
    assert "precision" not in ckpt.state  # a property of a run, recorded only in its train_config
    # The saved G_ema, loaded as any model is (fp32, default layout), is the trained one.
    z = torch.randn(2, tr.G_ema.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.nets["G_ema"](z, noise_mode="const"), tr.G_ema(z, noise_mode="const"),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads,fp32_kernel", [(1, False), (2, False), (2, True)])
def test_bf16_convolutions_keep_float32_weight_gradients_and_double_backward(threads, fp32_kernel, monkeypatch):
    # nets/conv.py: bf16 forward and input gradients, float32 weight gradients (also through R1's double backward).
    from sneakergan.nets.conv import conv2d, conv_transpose2d

    if fp32_kernel:  # the float32 weight-gradient kernel for busy shared machines
        monkeypatch.setenv("SNEAKERGAN_FP32_WEIGHT_GRAD", "1")
    else:
        monkeypatch.delenv("SNEAKERGAN_FP32_WEIGHT_GRAD", raising=False)
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _check_convolutions(conv2d, conv_transpose2d)
    finally:
        torch.set_num_threads(before)


def _check_convolutions(conv2d, conv_transpose2d):
    for transposed, stride, pad in ((False, 1, 1), (False, 2, 0), (True, 2, 0), (True, 1, 1)):
        x64 = torch.randn(3, 8, 9, 9, dtype=torch.float64)
        w64 = torch.randn(8, 6, 3, 3, dtype=torch.float64) if transposed else torch.randn(6, 8, 3, 3, dtype=torch.float64)
        grads = {}
        for ours in (False, True):
            x = x64.to(torch.bfloat16 if ours else torch.float64).requires_grad_(True)
            w = (w64.float() if ours else w64.clone()).requires_grad_(True)
            if transposed:
                y = conv_transpose2d(x, w, stride, pad) if ours else torch.nn.functional.conv_transpose2d(x, w, None, stride, pad)
            else:
                y = conv2d(x, w, None, stride, pad) if ours else torch.nn.functional.conv2d(x, w, None, stride, pad)
            (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
            (gw,) = torch.autograd.grad(y.double().square().mean() + gx.double().square().sum(), w)
            assert gw.dtype == w.dtype and gx.shape == x.shape
            grads[ours] = gw.double()
        rel = float((grads[True] - grads[False]).norm() / grads[False].norm())
        assert rel < 0.02, (transposed, stride, pad, rel)  # bf16 round-off is ~0.3%


def test_bf16_convolution_bias_gradient_is_float32_and_close():
    # The bias gradient is summed in bf16 (float32 accumulation inside the kernel, one rounding of each channel's sum)
    # and handed back as float32 for the float32 master bias.
    from sneakergan.nets.conv import conv2d

    torch.manual_seed(0)
    x64, w64, b64 = torch.randn(4, 8, 16, 16, dtype=torch.float64), torch.randn(6, 8, 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    gy64 = torch.randn(4, 6, 16, 16, dtype=torch.float64)
    b = b64.float().requires_grad_(True)
    y = conv2d(x64.to(torch.bfloat16), w64.float().requires_grad_(True), b, 1, 1)
    (gb,) = torch.autograd.grad(y, b, gy64.to(torch.bfloat16))
    expected = gy64.to(torch.bfloat16).double().sum(dim=(0, 2, 3))
    assert gb.dtype == torch.float32
    torch.testing.assert_close(gb.double(), expected, rtol=4e-3, atol=1e-2)
