"""The StyleGAN2 networks: shapes, initialisation scales, truncation, resampling, conditioning, parameter counts."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from sneakergan.generate import generate_images, seeds_to_z
from sneakergan.nets import Discriminator, Generator, NetworkConfig, count_parameters, preset
from sneakergan.nets.layers import Conv2dLayer, FullyConnected, fir_taps, modulated_conv2d, upsample2d
from sneakergan.nets.mapping import truncate


def small_cfg(**kw) -> NetworkConfig:
    base = dict(z_dim=32, w_dim=32, resolution=16, mapping_layers=2, channel_base=512, channel_max=32, mbstd_group=2)
    base.update(kw)
    return NetworkConfig(**base)


@pytest.mark.parametrize("res", [16, 32, 64])
def test_generator_and_discriminator_shapes(res):
    torch.manual_seed(0)
    cfg = small_cfg(resolution=res)
    G, D = Generator(cfg), Discriminator(cfg)
    img = G(torch.randn(2, cfg.z_dim))
    assert img.shape == (2, 3, res, res)
    assert G.num_ws == 2 * int(math.log2(res)) - 2
    assert D(img).shape == (2, 1)


@pytest.mark.parametrize("aspect,shape", [((4, 3), (24, 32)), ((3, 4), (32, 24)), ((2, 1), (16, 32))])
def test_non_square_output_without_padding(aspect, shape):
    cfg = small_cfg(resolution=32, aspect=aspect)
    G, D = Generator(cfg), Discriminator(cfg)
    img = G(torch.randn(2, cfg.z_dim), noise_mode="const")
    assert tuple(img.shape[2:]) == shape
    assert G.synthesis.b4.const.shape[1:] == cfg.base_size
    assert D(img).shape == (2, 1)
    with pytest.raises(ValueError, match="expects images"):
        D(torch.zeros(2, 3, 32, 32))


def test_bad_configs_rejected():
    with pytest.raises(ValueError, match="power of two"):
        small_cfg(resolution=48)
    with pytest.raises(ValueError, match="aspect"):
        small_cfg(aspect=(5, 3))


def test_reference_parameter_counts():
    # ../shared/REFERENCES.md: measured on the reference implementation
    assert count_parameters(Generator(preset("paper256"))) == 24_767_458
    assert count_parameters(Discriminator(preset("paper256"))) == 24_001_089
    assert count_parameters(Generator(preset("paper512"))) == 30_276_583
    assert count_parameters(Discriminator(preset("paper512"))) == 28_982_849
    cifar = preset("cifar")
    assert count_parameters(Generator(cifar)) == 19_947_539
    # the reference table's cifar D count is for a residual D; the cifar config itself drops the skips
    assert count_parameters(Discriminator(dataclasses.replace(cifar, d_architecture="resnet"))) == 21_507_073
    assert count_parameters(Discriminator(cifar)) == 21_507_073 - 3 * 512 * 512


def test_seed_determinism_across_batch_sizes():
    torch.manual_seed(1)
    G = Generator(small_cfg(resolution=32)).eval()
    seeds = [5, 6, 7, 8, 9]
    one = dict(generate_images(G, seeds, psi=0.7, batch_size=1))
    many = dict(generate_images(G, seeds, psi=0.7, batch_size=4))
    for s in seeds:
        diff = (one[s].astype(int) - many[s].astype(int))
        assert abs(diff).max() <= 1
    assert not (one[5] == one[6]).all()


def test_random_noise_reproducible_per_seed():
    torch.manual_seed(1)
    cfg = small_cfg()
    G = Generator(cfg).eval()
    for m in G.modules():  # give noise a visible strength
        if hasattr(m, "noise_strength"):
            m.noise_strength.data.fill_(0.5)
    a = dict(generate_images(G, [3, 4], noise_mode="random", batch_size=2))
    b = dict(generate_images(G, [4, 3], noise_mode="random", batch_size=1))
    assert (a[3] == b[3]).all() and (a[4] == b[4]).all()
    c = dict(generate_images(G, [3], noise_mode="const"))
    assert not (a[3] == c[3]).all()


def test_demodulation_keeps_unit_scale_at_init():
    torch.manual_seed(0)
    x = torch.randn(8, 64, 16, 16)
    weight = torch.randn(64, 64, 3, 3)
    styles = torch.randn(8, 64) * 3 + 1  # wildly scaled styles: demodulation must undo the scale
    y = modulated_conv2d(x, weight, styles, demodulate=True)
    assert 0.8 < y.std().item() < 1.2
    y_nodemod = modulated_conv2d(x, weight, styles, demodulate=False)
    assert y_nodemod.std().item() > 5


def test_fused_and_nonfused_modconv_agree():
    torch.manual_seed(0)
    x, w, s = torch.randn(3, 8, 6, 6), torch.randn(5, 8, 3, 3), torch.randn(3, 8)
    f = fir_taps()
    for up in (False, True):
        a = modulated_conv2d(x, w, s, up=up, resample_filter=f, fused=False)
        b = modulated_conv2d(x, w, s, up=up, resample_filter=f, fused=True)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_equalised_learning_rate_scaling():
    torch.manual_seed(0)
    fc = FullyConnected(512, 256, lr_multiplier=0.01)
    # stored weights are N(0,1)/lr_mult; the run-time scale brings the effective weights to He init
    assert 90 < fc.weight.std().item() < 110
    assert fc.weight_gain == pytest.approx(0.01 / math.sqrt(512))
    assert (fc.weight * fc.weight_gain).std().item() == pytest.approx(1 / math.sqrt(512), rel=0.05)
    y = fc(torch.randn(4096, 512))
    assert 0.9 < y.std().item() < 1.1
    conv = Conv2dLayer(64, 64, 3)
    assert conv.weight_gain == pytest.approx(1 / math.sqrt(64 * 9))
    assert 0.85 < conv(torch.randn(16, 64, 8, 8)).std().item() < 1.15


def test_truncation_moves_w_toward_average():
    torch.manual_seed(0)
    G = Generator(small_cfg())
    G.mapping.w_avg.copy_(torch.randn(G.w_dim))
    z = torch.randn(4, G.z_dim)
    ws1 = G.mapping(z, psi=1.0)
    dists = [(G.mapping(z, psi=p) - G.mapping.w_avg).norm().item() for p in (1.0, 0.7, 0.3, 0.0)]
    assert dists == sorted(dists, reverse=True) and dists[-1] < 1e-4
    cut = G.mapping(z, psi=0.5, cutoff=2)
    torch.testing.assert_close(cut[:, 2:], ws1[:, 2:])
    torch.testing.assert_close(cut[:, :2], truncate(ws1[:, :2], G.mapping.w_avg, 0.5))


def test_w_avg_tracks_only_when_asked():
    G = Generator(small_cfg())
    z = torch.randn(64, G.z_dim)
    G.mapping(z)
    assert G.mapping.w_avg.abs().sum() == 0
    G.mapping(z, update_w_avg=True)
    assert G.mapping.w_avg.abs().sum() > 0


def test_upsample_matches_zero_insertion_definition():
    """Our strided fast path equals the textbook definition: insert zeros, pad (2, 1), convolve with 4 * outer(f, f)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7)
    f = fir_taps()
    z = torch.zeros(2, 3, 10, 14)
    z[:, :, ::2, ::2] = x
    k = (torch.outer(f, f) * 4).flip([0, 1]).reshape(1, 1, 4, 4).repeat(3, 1, 1, 1)
    ref = F.conv2d(F.pad(z, [2, 1, 2, 1]), k, groups=3)
    torch.testing.assert_close(upsample2d(x, f), ref, atol=1e-6, rtol=1e-5)


def test_conditional_networks_use_labels():
    torch.manual_seed(0)
    cfg = small_cfg(c_dim=3)
    G, D = Generator(cfg).eval(), Discriminator(cfg).eval()
    z = seeds_to_z([1, 1], cfg.z_dim)
    c = torch.eye(3)[[0, 2]]
    img = G(z, c, noise_mode="const")
    assert not torch.allclose(img[0], img[1])
    logits = D(img, c)
    assert logits.shape == (2, 1) and not torch.allclose(D(img, c.flip(0)), logits)
    with pytest.raises(ValueError, match="conditional"):
        G(z)


def test_minibatch_stddev_groups_interleave():
    from sneakergan.nets.discriminator import MinibatchStd

    layer = MinibatchStd(group_size=2)
    x = torch.zeros(4, 2, 1, 1)
    x[0] = 1.0  # group of samples {0, 2} varies, group {1, 3} does not
    y = layer(x)[:, -1, 0, 0]
    assert y[0] == y[2] and y[1] == y[3] and y[0] > y[1]


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 1, 1, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (1, 1, (-1, 2, 0, -1))])
def test_matrix_and_convolution_resampling_agree(monkeypatch, up, down, pad):
    """The banded-matrix path (small maps) and the direct convolution path (large maps) compute the same thing."""
    from sneakergan.nets import layers

    torch.manual_seed(0)
    x = torch.randn(2, 3, 12, 10, requires_grad=True)
    f = fir_taps()
    a = layers.upfirdn2d(x, f, up=up, down=down, pad=pad, gain=up * up)
    monkeypatch.setattr(layers, "MATMUL_FIR_MAX_SIDE", 0)
    b = layers.upfirdn2d(x, f, up=up, down=down, pad=pad, gain=up * up)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    (ga,) = torch.autograd.grad(a.square().sum(), x)
    (gb,) = torch.autograd.grad(b.square().sum(), x)
    torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-5)


def test_rendering_in_inference_mode_then_training_works():
    """Cached resampling matrices first built under inference mode must still work with autograd later."""
    from sneakergan.nets import layers

    layers._fir_matrix.cache_clear()
    torch.manual_seed(0)
    G = Generator(small_cfg(resolution=32, channel_base=256, channel_max=8))
    z = torch.randn(2, G.z_dim)
    with torch.inference_mode():
        G(z, noise_mode="const")
    G(z).square().mean().backward()
    assert G.synthesis.b32.conv0.weight.grad is not None


def test_inference_weight_cache_follows_weight_changes():
    """Inference keeps per-weight work (squared taps, compute-dtype copy, transposed form) between calls; a step, a
    load or a move of the weights must be seen by the next call, and the result must equal the autograd path's."""
    torch.manual_seed(0)
    G = Generator(small_cfg(resolution=32))
    ws = G.mapping(torch.randn(3, G.z_dim), None).detach()
    train_path = lambda: G.synthesis(ws, noise_mode="const")  # noqa: E731  (grad enabled: no cache)
    with torch.inference_mode():
        before = G.synthesis(ws, noise_mode="const")
        one = G.synthesis(ws[:1], noise_mode="const")
    torch.testing.assert_close(before, train_path().detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(one, before[:1], rtol=1e-4, atol=1e-5)  # a single image (style folded or not)
    opt = torch.optim.SGD(G.synthesis.parameters(), lr=0.5)
    G.synthesis(ws, noise_mode="const").square().mean().backward()
    opt.step()  # in place: the weights' version moves on
    with torch.inference_mode():
        after_step = G.synthesis(ws, noise_mode="const")
    assert (after_step - before).abs().max() > 1e-3
    torch.testing.assert_close(after_step, train_path().detach(), rtol=1e-4, atol=1e-5)
    G2 = Generator(small_cfg(resolution=32))  # other weights
    with torch.inference_mode():
        assert (G2.synthesis(ws, noise_mode="const") - after_step).abs().max() > 1e-3  # caches hold G2's weights
        G2.load_state_dict(G.state_dict())
        torch.testing.assert_close(G2.synthesis(ws, noise_mode="const"), after_step)
