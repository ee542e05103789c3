"""ADA augmentation pipeline and p controller (sneakergan.train.augment)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sneakergan.train.augment import AUGPIPES, AdaController, AugmentPipe, AugmentSpec


pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_images(n: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Random but band-limited colour images in [-1, 1] (resampling is near-exact on them)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 4, size // 4, generator=g) * 1.6 - 0.8
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def luma(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=1)


@pytest.mark.parametrize("pipe", list(AUGPIPES))
def test_p_zero_is_identity(pipe):
    x = smooth_images(4)
    torch.manual_seed(0)
    assert torch.equal(AugmentPipe(pipe, p=0.0)(x), x)


def test_unknown_pipe_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown augment pipe"):
        AugmentSpec.from_pipe("bgx")


def test_xflip_flips_exactly():
    torch.manual_seed(1)
    x = smooth_images(32)
    y = AugmentPipe(AugmentSpec(xflip=1), p=1.0)(x)
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(32)]
    same = [torch.equal(y[i], x[i]) for i in range(32)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 4 <= sum(flipped) <= 28  # i ~ U{0, 1} when the op fires, as in the paper


def test_rotate90_is_exact_quarter_turns():
    torch.manual_seed(2)
    x = smooth_images(32)
    y = AugmentPipe(AugmentSpec(rotate90=1), p=1.0)(x)
    turns = []
    for i in range(32):
        ks = [k for k in range(4) if torch.equal(y[i], torch.rot90(x[i], k, (1, 2)))]
        assert len(ks) == 1
        turns.append(ks[0])
    assert len(set(turns)) >= 3


def test_integer_translation_shifts_by_whole_pixels_with_mirrored_edges():
    torch.manual_seed(3)
    x = smooth_images(16)
    y = AugmentPipe(AugmentSpec(xint=1), p=1.0)(x)
    moved = 0
    for i in range(16):
        xp = F.pad(x[i : i + 1], (4, 4, 4, 4), mode="reflect")[0]
        hits = [(dx, dy) for dx in range(-4, 5) for dy in range(-4, 5)
                if torch.equal(y[i], xp[:, 4 - dy : 4 - dy + 32, 4 - dx : 4 - dx + 32])]
        assert hits, f"image {i} is not an integer shift of its input"
        moved += hits[0] != (0, 0)
    assert moved >= 10  # max shift 0.125 * 32 = 4 px


def _sequential_blit(x, flip, k, shift):
    """The blit ops one after another with plain tensor ops (x-flip, torch.rot90, mirrored integer shift)."""
    n, _, h, w = x.shape
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    for t in (1, 2, 3):
        if bool((k == t).any()):
            x = torch.where((k == t)[:, None, None, None], torch.rot90(x, t, (2, 3)), x)
    out = []
    for i in range(n):
        dx, dy = shift[i].tolist()
        px, py = w - 1, h - 1  # reflect padding (edge not repeated) wider than any shift
        xp = F.pad(x[i : i + 1], (px, px, py, py), mode="reflect")[0]
        out.append(xp[:, py - dy : py - dy + h, px - dx : px - dx + w])
    return torch.stack(out)


@pytest.mark.parametrize("h,w", [(16, 16), (12, 16)])
def test_blit_as_row_and_column_maps_is_the_sequential_ops(h, w):
    # The pipe folds flip, quarter turns and mirrored shifts into one row map and one column map per image (of the
    # transposed image after an odd quarter turn); the same draws applied one op at a time give the same pixels.
    pipe = AugmentPipe(AugmentSpec(xflip=1, rotate90=1, xint=1), p=1.0)
    n, x = 64, torch.randn(64, 3, h, w)
    torch.manual_seed(5)
    d = pipe._draw(n, h, w, x.device)
    flip, k, shift = torch.as_tensor(d.flip), torch.as_tensor(d.k), torch.as_tensor(d.shift)
    assert len(set(k.tolist())) == (4 if h == w else 2) and bool(shift.any()) and 8 < int(flip.sum()) < 56
    transpose = k % 2 == 1
    src = torch.where(transpose[:, None, None, None], x.transpose(2, 3), x) if h == w else x
    rows, cols = torch.as_tensor(d.rows), torch.as_tensor(d.cols)
    mapped = src[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    assert torch.equal(mapped, _sequential_blit(x, flip, k, shift))
    torch.manual_seed(5)
    assert torch.equal(pipe(x), mapped)  # and the pipe applies exactly those maps


@pytest.mark.parametrize("h,w", [(48, 64), (32, 32)])
def test_axis_aligned_warps_take_the_separable_path_with_the_same_result(h, w):
    # Without rotation a warp resamples each axis alone: per-image matrices A x B^T must give what the 2-D bilinear
    # grid gives (to float32 rounding of the sample positions), with any blit folded in, rotated or not.
    pipe = AugmentPipe("bg", p=1.0)
    x = smooth_images(12, 64)[..., :h, :w].contiguous()
    rng = np.random.default_rng(7)
    g = np.tile(np.eye(3), (12, 1, 1))
    g[:, 0, 0], g[:, 1, 1] = np.exp2(rng.normal(size=12) * 0.3), np.exp2(rng.normal(size=12) * 0.3)
    g[:, 0, 2], g[:, 1, 2] = rng.normal(size=12) * 8, rng.normal(size=12) * 6
    ident_r, ident_c = np.tile(np.arange(h), (12, 1)), np.tile(np.arange(w), (12, 1))
    warped = np.ones(12, dtype=bool)
    sep = pipe._separable(x, ident_r, ident_c, g, warped)
    assert (sep - pipe.resample(x, g)).abs().max() < 1e-4
    torch.manual_seed(3)
    d = AugmentPipe(AugmentSpec(xflip=1, rotate90=1, xint=1), p=1.0)._draw(12, h, w, x.device)
    transpose = torch.as_tensor(d.k % 2 == 1)
    src = torch.where(transpose[:, None, None, None], x.transpose(2, 3), x) if h == w else x
    blitted = pipe._separable(src, d.rows, d.cols, np.tile(np.eye(3), (12, 1, 1)), ~warped)
    assert (pipe._separable(src, d.rows, d.cols, g, warped) - pipe.resample(blitted, g)).abs().max() < 1e-4
    theta = rng.uniform(0, 6, size=12)
    rot = g.copy()
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = np.cos(theta), -np.sin(theta), np.sin(theta), np.cos(theta)
    assert (pipe._rotated(src, d.rows, d.cols, rot, warped) - pipe.resample(blitted, rot)).abs().max() < 1e-4


def test_geometric_resampling_is_accurate():
    pipe = AugmentPipe("geom", p=1.0)
    x = smooth_images(4)
    eye = torch.eye(3).repeat(4, 1, 1)
    assert (pipe.resample(x, eye) - x).abs().max() < 0.02
    quarter = eye.clone()
    quarter[:, :2, :2] = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    assert (pipe.resample(x, quarter) - torch.rot90(x, 1, (2, 3))).abs().max() < 0.02
    shift = eye.clone()
    shift[:, 0, 2] = 3.0  # output pixel j reads input j + 3
    assert (pipe.resample(x, shift)[..., :-3] - x[..., 3:]).abs().max() < 0.02


def test_geometry_does_not_leak_borders_or_alias():
    # Mirror padding: a flat image stays flat under any zoom-out / rotation (no black corners).
    torch.manual_seed(4)
    flat = torch.full((8, 3, 32, 32), 0.3)
    y = AugmentPipe("geom", p=1.0)(flat)
    assert (y - 0.3).abs().max() < 1e-4
    # Low-pass: a pixel-frequency checkerboard shrunk to half size must not alias into a strong pattern.
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2).float().mul(2).sub(1)
    img = checker.expand(1, 3, 32, 32).contiguous()
    zoom_out = torch.diag(torch.tensor([2.0, 2.0, 1.0]))[None]
    out = AugmentPipe("geom", p=1.0).resample(img, zoom_out)
    assert out.std() < 0.1, "Nyquist-frequency content survived a 2x zoom-out (aliasing)"


def test_geometric_ops_each_change_images():
    x = smooth_images(16)
    for op in ("scale", "rotate", "aniso", "xfrac"):
        torch.manual_seed(5)
        y = AugmentPipe(AugmentSpec(**{op: 1}), p=1.0)(x)
        changed = ((y - x).abs().amax(dim=(1, 2, 3)) > 0.05).sum()
        assert changed >= 12, op


def test_colour_leaves_images_without_a_colour_op_bit_identical():
    # The colour stage multiplies the whole batch by per-image matrices; where nothing fired that is the identity.
    torch.manual_seed(11)
    x = smooth_images(64)
    y = AugmentPipe("color", p=0.2)(x)
    same = [torch.equal(y[i], x[i]) for i in range(64)]
    assert 5 <= sum(same) <= 59  # (1 - 0.2)^5 = 33% of images have no colour op at all


def test_brightness_shifts_every_pixel_equally():
    torch.manual_seed(6)
    x = smooth_images(64)
    y = AugmentPipe(AugmentSpec(brightness=1), p=1.0)(x)
    d = y - x
    per_image = d.mean(dim=(1, 2, 3))
    assert torch.allclose(d, per_image[:, None, None, None].expand_as(d), atol=1e-5)
    assert 0.1 < per_image.std() < 0.3  # N(0, 0.2)


def test_contrast_scales_about_grey():
    torch.manual_seed(7)
    x = smooth_images(16)
    y = AugmentPipe(AugmentSpec(contrast=1), p=1.0)(x)
    ratio = (y * x).sum(dim=(1, 2, 3)) / x.square().sum(dim=(1, 2, 3))
    assert torch.allclose(y, x * ratio[:, None, None, None], atol=1e-5)
    assert (ratio.log2().abs() > 0.05).sum() >= 10


def test_hue_and_saturation_keep_luma_and_lumaflip_negates_it():
    torch.manual_seed(8)
    x = smooth_images(16)
    for op in ("hue", "saturation"):
        y = AugmentPipe(AugmentSpec(**{op: 1}), p=1.0)(x)
        assert torch.allclose(luma(y), luma(x), atol=1e-5), op
        assert (y - x).abs().amax() > 0.1, op
    hue = AugmentPipe(AugmentSpec(hue=1), p=1.0)(x)
    chroma = lambda t: (t - luma(t)[:, None]).norm(dim=1)  # noqa: E731
    assert torch.allclose(chroma(hue), chroma(x), atol=1e-4)
    y = AugmentPipe(AugmentSpec(lumaflip=1), p=1.0)(x)
    for i in range(16):
        same = torch.allclose(y[i], x[i], atol=1e-6)
        flipped = torch.allclose(luma(y[i : i + 1]), -luma(x[i : i + 1]), atol=1e-5)
        assert same or flipped


def test_filter_noise_cutout():
    torch.manual_seed(9)
    x = smooth_images(16)
    y = AugmentPipe(AugmentSpec(imgfilter=1), p=1.0)(x)
    assert torch.isfinite(y).all() and (y - x).abs().amax() > 0.01
    y = AugmentPipe(AugmentSpec(noise=1), p=1.0)(x)
    assert 0 < (y - x).std() < 0.3
    y = AugmentPipe(AugmentSpec(cutout=1), p=1.0)(x + 2)  # no zeros in the input
    zero_frac = (y == 0).all(dim=1).float().mean(dim=(1, 2))
    assert ((zero_frac > 0.05) & (zero_frac <= 0.25 + 1e-6)).all()  # a square of half the side (clipped at edges)


def test_gradients_flow_and_values_stay_finite_and_in_range():
    torch.manual_seed(10)
    x = smooth_images(16).requires_grad_(True)
    y = AugmentPipe("bgcfnc", p=1.0)(x)
    assert torch.isfinite(y).all() and y.abs().max() < 10
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    g = AugmentPipe("bg", p=1.0)(smooth_images(16))
    assert g.min() > -1.1 and g.max() < 1.1  # geometry only resamples: values stay in the data's range


def _feed(ctrl: AdaController, sign: float, iterations: int, batch: int) -> None:
    for _ in range(iterations):
        ctrl.accumulate(torch.full((batch, 1), sign))
        ctrl.update(batch)


def test_ada_controller_moves_p_at_the_reference_speed():
    pipe = AugmentPipe("bgc", p=0.0)
    ctrl = AdaController(pipe, target=0.6, ada_kimg=500, interval=4)
    _feed(ctrl, +1.0, 400, batch=64)  # D always confident on reals: r_t = 1 > 0.6
    # 100 updates of 64 * 4 / 500000 each.
    assert math.isclose(float(pipe.p), 100 * 64 * 4 / 500_000, rel_tol=1e-4)
    assert ctrl.last_rt == 1.0
    p_high = float(pipe.p)
    _feed(ctrl, -1.0, 40, batch=64)  # r_t = -1 < target: p falls
    assert math.isclose(float(pipe.p), p_high - 10 * 64 * 4 / 500_000, rel_tol=1e-4)
    _feed(ctrl, -1.0, 4000, batch=64)
    assert float(pipe.p) == 0.0  # clamped
    # Mixed statistics around the target: r_t = 0.5 < 0.6 falls, 0.75 rises.
    ctrl.load_state_dict({"p": 0.5})
    for _ in range(4):
        ctrl.accumulate(torch.tensor([[1.0], [1.0], [1.0], [-1.0]]))  # r_t = 0.5
        ctrl.update(4)
    assert float(pipe.p) < 0.5
    state = ctrl.state_dict()
    again = AdaController(AugmentPipe("bgc"), target=0.6)
    again.load_state_dict(state)
    assert float(again.pipe.p) == float(pipe.p)
