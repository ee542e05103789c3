"""The diversity terms of the G loss: the hinge (zero while fakes are as varied as the reals, a push toward variety
when they collapse) and the kernel MMD (near zero for a second sample of the data, large for a collapsed batch)."""

from __future__ import annotations

import pytest
import torch

from sneakergan.prepare.synth import write_synth_dataset
from sneakergan.train.config import resolve_config
from sneakergan.train.dataset import ImageDataset, to_float
from sneakergan.train.loop import Trainer, read_log
from sneakergan.train.loss import (MemoryBank, banked_kernel_mmd, coarse_features, diversity_hinge, kernel_mmd,
                                   nearest_sample_pull, neighbour_spread, pair_distances, principal_axes, uncovered_pull,
                                   soft_outline, coarse_colours)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reals(tmp_path_factory) -> torch.Tensor:
    path = write_synth_dataset(tmp_path_factory.mktemp("d") / "s.zip", 16, 32, seed=3)
    ds = ImageDataset(str(path))
    return torch.stack([to_float(ds[i][0]) for i in range(16)])


def test_as_varied_as_the_data_costs_nothing(reals):
    loss, stats = diversity_hinge(reals.clone(), reals)
    assert float(loss) == 0.0
    assert float(stats["div_outline"]) == pytest.approx(1.0, abs=1e-2)


def test_a_collapsed_batch_is_pushed_apart_in_outline_and_colour(reals):
    one = reals[:1].repeat(16, 1, 1, 1)
    fake = (one + 0.01 * torch.randn_like(one)).requires_grad_(True)
    loss, stats = diversity_hinge(fake, reals)
    assert float(loss.detach()) > 1.5  # both terms near their maximum of 1
    assert float(stats["div_outline"]) < 0.1 and float(stats["div_colour"]) < 0.1
    loss.backward()
    # One gradient step apart makes the pairs more different: the hinge's gradient points toward variety.
    with torch.no_grad():
        stepped = fake - 50.0 * fake.grad
    before = pair_distances(fake.detach())
    after = pair_distances(stepped)
    assert after[0] > before[0] and after[1] > before[1]


def test_outline_ignores_the_background_colour(reals):
    # Inverted images (black canvas) have the same outlines as the white originals.
    colour, outline = pair_distances(reals)
    colour_inv, outline_inv = pair_distances(-reals)
    assert float(outline_inv) == pytest.approx(float(outline), rel=1e-5)
    assert float(colour_inv) == pytest.approx(float(colour), rel=1e-5)


def test_one_shape_in_many_colours_is_caught_by_the_outline(reals):
    # The collapse the shipped model showed: one silhouette, recoloured, here on canvases of different hazy tints
    # (as an early generator draws them). Colour stays varied, the outline does not.
    torch.manual_seed(0)
    shoe = reals[:1].repeat(16, 1, 1, 1)
    foreground = soft_outline(shoe)[:, None] > 0.5
    tint = torch.rand(16, 3, 1, 1) * 1.2 - 1  # uppers clearly darker than any canvas
    haze = 0.75 + 0.2 * torch.rand(16, 3, 1, 1) + 0.01 * torch.randn_like(shoe)
    recoloured = torch.where(foreground, tint.expand_as(shoe), haze)
    _, stats = diversity_hinge(recoloured, reals)
    assert float(stats["div_colour"]) > 0.5 and float(stats["div_outline"]) < 0.15, stats


def _tiny_run(tmp_path, **terms) -> tuple[Trainer, list[dict]]:
    """Two ticks of the tiny preset at 32 px with the given loss terms on: (trainer, logged rows)."""
    data = write_synth_dataset(tmp_path / "s.zip", 16, 32, seed=0)
    cfg = resolve_config(dict(data=str(data), out=str(tmp_path / "run"), preset="tiny", kimg=0.064, snap=0.064,
                              tick=0.032, workers=0, grid_size=4, threads=1, resolution=32, **terms))
    trainer = Trainer(cfg, progress=False)
    trainer.run()
    return trainer, read_log(tmp_path / "run")


def test_training_with_the_hinge_logs_its_ratios(tmp_path):
    _, log = _tiny_run(tmp_path, diversity=1.0)
    rows = [r for r in log if "div_outline" in r]
    assert rows, "the hinge's ratios are logged"
    assert all(0 <= r["div_outline"] < 10 and r["loss_div"] >= 0 for r in rows)


@pytest.fixture(scope="module")
def more_reals(tmp_path_factory) -> torch.Tensor:
    path = write_synth_dataset(tmp_path_factory.mktemp("d2") / "s.zip", 32, 32, seed=4)
    ds = ImageDataset(str(path))
    return torch.stack([to_float(ds[i][0]) for i in range(32)])


def test_mmd_is_small_for_the_data_and_large_for_a_collapse(more_reals):
    a, b = more_reals[:16], more_reals[16:]
    same, _ = kernel_mmd(a, b)
    collapsed, _ = kernel_mmd(a[:1].repeat(16, 1, 1, 1), b)
    recoloured, _ = kernel_mmd(-a[:1].repeat(16, 1, 1, 1).abs(), b)
    assert abs(float(same)) < 0.1
    assert float(collapsed) > 5 * max(float(same), 0.02)
    assert float(recoloured) > 5 * max(float(same), 0.02)


def test_mmd_gradient_pulls_a_collapsed_batch_toward_the_data(more_reals):
    a, b = more_reals[:16], more_reals[16:]
    fake = (a[:1].repeat(16, 1, 1, 1) + 0.05 * torch.randn(16, *a.shape[1:])).requires_grad_(True)
    loss, stats = kernel_mmd(fake, b)
    assert float(stats["mmd"]) == pytest.approx(float(loss.detach()))
    loss.backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0
    with torch.no_grad():
        stepped = fake - 20.0 * fake.grad / fake.grad.abs().amax()
        after, _ = kernel_mmd(stepped, b)
    assert float(after) < float(loss.detach())
    # And it spreads the batch out: the coarse features of the stepped fakes differ more from each other.
    spread = lambda x: torch.pdist(coarse_features(x)).mean()  # noqa: E731
    assert float(spread(stepped)) > float(spread(fake.detach()))


def test_banked_mmd_without_a_bank_has_the_batch_mmds_gradient_and_value(more_reals):
    a, b = more_reals[:16], more_reals[16:]
    fake = (a[:1].repeat(16, 1, 1, 1) + 0.05 * torch.randn(16, *a.shape[1:])).requires_grad_(True)
    loss, _ = kernel_mmd(fake, b)
    (grad,) = torch.autograd.grad(loss, fake)
    banked, stats, f_now, r_now = banked_kernel_mmd(fake, b)
    (banked_grad,) = torch.autograd.grad(banked, fake)
    torch.testing.assert_close(banked_grad, grad, rtol=1e-4, atol=1e-7)
    assert float(stats["mmd"]) == pytest.approx(float(loss.detach()), rel=1e-4)
    assert f_now.shape == r_now.shape == (16, coarse_features(b).shape[1]) and not f_now.requires_grad


def test_remembered_fakes_repel_the_batch_from_where_g_drew_lately(more_reals):
    a, b = more_reals[:16], more_reals[16:]
    # G "drew" the reals' first image many times lately; the current batch is near it again.
    drawn = coarse_features(a[:1].repeat(64, 1, 1, 1) + 0.05 * torch.randn(64, *a.shape[1:]))
    fake = (a[:1].repeat(16, 1, 1, 1) + 0.05 * torch.randn(16, *a.shape[1:])).requires_grad_(True)
    alone, _, _, _ = banked_kernel_mmd(fake, b)
    remembered, stats, _, _ = banked_kernel_mmd(fake, b, bank_fake=drawn, bank_real=coarse_features(a))
    assert float(stats["mmd"]) > 0
    (g_alone,) = torch.autograd.grad(alone, fake)
    (g_bank,) = torch.autograd.grad(remembered, fake)
    # Stepping along either gradient moves the batch away from the remembered image; the bank pushes harder.
    centre = coarse_features(a[:1])
    away = lambda g: float(torch.cdist(coarse_features(fake.detach() - 5.0 * g / g.abs().amax()), centre).mean())  # noqa: E731
    start = float(torch.cdist(coarse_features(fake.detach()), centre).mean())
    assert away(g_bank) > start and away(g_alone) > start


def test_memory_bank_keeps_the_newest_rows():
    bank = MemoryBank(5)
    assert len(bank) == 0 and bank.rows is None
    bank.push(torch.arange(3.0)[:, None])
    bank.push(torch.arange(3.0, 7.0)[:, None])
    assert bank.rows.flatten().tolist() == [3.0, 4.0, 5.0, 6.0, 0.0]
    bank.push(torch.arange(10.0, 18.0)[:, None])
    assert bank.rows.flatten().tolist() == [13.0, 14.0, 15.0, 16.0, 17.0]
    off = MemoryBank(0)
    off.push(torch.ones(4, 1))
    assert len(off) == 0


def test_training_with_mmd_logs_it(tmp_path):
    trainer, log = _tiny_run(tmp_path, mmd=1.0, mmd_bank=8)
    assert len(trainer.loss.bank_fake) == len(trainer.loss.bank_real) == 8
    rows = [r for r in log if "mmd" in r]
    assert rows, "the MMD is logged"
    assert all(-1 < r["mmd"] < 6 for r in rows)


def test_nearest_sample_pull_is_lowest_when_every_real_has_a_sample_nearby(more_reals):
    a, b = more_reals[:16], more_reals[16:]
    covered, stats = nearest_sample_pull(b, b)  # every real has itself as a sample
    assert float(covered) == pytest.approx(0.0, abs=1e-6) and float(stats["cover"]) == pytest.approx(0.0, abs=1e-6)
    other, _ = nearest_sample_pull(a, b)  # another sample of the data: about the reals' own spacing
    half, _ = nearest_sample_pull(b[:8].repeat(2, 1, 1, 1), b)  # half of the data dropped
    collapsed, _ = nearest_sample_pull(a[:1].repeat(16, 1, 1, 1), b)
    assert 0 < float(half) < float(collapsed)
    assert float(other) < float(collapsed)


def test_nearest_sample_pull_moves_only_the_nearest_fake_toward_the_uncovered_real(more_reals):
    b = more_reals[16:20]
    # Three fakes sit on reals 0-2; the fourth copies real 0 too, so real 3 is left uncovered.
    fake = torch.cat([b[:3], b[:1]]).clone().requires_grad_(True)
    loss, _ = nearest_sample_pull(fake, b)
    (grad,) = torch.autograd.grad(loss, fake)
    moved = grad.flatten(1).abs().sum(1)
    assert float(loss.detach()) > 0
    assert int((moved > 0).sum()) == 1, "one fake answers for the uncovered real"
    with torch.no_grad():
        step = fake - 0.5 * grad / grad.abs().amax()
        assert float(nearest_sample_pull(step, b)[0]) < float(loss.detach())


def test_training_with_the_nearest_sample_pull_logs_it(tmp_path):
    _, log = _tiny_run(tmp_path, cover=1.0)
    rows = [r for r in log if "cover" in r]
    assert rows, "the pull is logged"
    assert all(0 < r["cover"] < 10 for r in rows)


def test_neighbour_spread_is_zero_for_data_and_pushes_clumped_fakes_apart(more_reals):
    a, b = more_reals[:16], more_reals[16:]
    # Fakes as spread out as the data cost (almost) nothing: another sample of the same synthetic set.
    same, stats, f_now, r_now = neighbour_spread(a, b)
    assert float(same) < 0.1 and 0.6 < float(stats["spread_ratio"]) < 1.6
    assert f_now.shape == r_now.shape and not f_now.requires_grad
    # Clumped fakes: four designs, each drawn four times with small changes.
    clumped = (a[:4].repeat(4, 1, 1, 1) + 0.02 * torch.randn(16, *a.shape[1:])).requires_grad_(True)
    loss, stats, _, _ = neighbour_spread(clumped, b)
    assert float(loss.detach()) > 0.5 and float(stats["spread_ratio"]) < 0.3
    (grad,) = torch.autograd.grad(loss, clumped)
    with torch.no_grad():
        stepped = clumped - 2.0 * grad / grad.abs().amax()
        assert float(neighbour_spread(stepped, b)[0]) < float(loss.detach())


def test_neighbour_spread_compares_equal_numbers_of_fakes_and_reals(more_reals):
    a, b = more_reals[:16], more_reals[16:]
    # A long memory of reals and a short one of fakes: the reals' neighbour distance shrinks with more rows, so it
    # is taken over as many reals as there are fakes, never more.
    _, _, f_now, r_now = neighbour_spread(a, b)
    long_reals = torch.cat([r_now] * 4) + 0.001 * torch.randn(64, r_now.shape[1])
    loss_short, _, _, _ = neighbour_spread(a, b, bank_fake=f_now[:4], bank_real=long_reals)
    loss_equal, _, _, _ = neighbour_spread(a, b, bank_fake=f_now[:4], bank_real=long_reals[:4])
    assert float(loss_short) == pytest.approx(float(loss_equal))


def test_training_with_the_neighbour_spread_fills_its_memories(tmp_path):
    trainer, log = _tiny_run(tmp_path, spread=1.0)
    assert len(trainer.loss.spread_fake) == len(trainer.loss.spread_real) > 0
    rows = [r for r in log if "spread_ratio" in r]
    assert rows and all(0 <= r["spread"] < 1 and r["spread_ratio"] > 0 for r in rows)


def test_principal_axes_are_orthonormal_and_centre_the_data(more_reals):
    feats = coarse_colours(more_reals)
    axes = principal_axes(feats, 8)
    assert axes.axes.shape == (8, feats.shape[1])
    assert torch.allclose(axes.axes @ axes.axes.T, torch.eye(8), atol=1e-4)
    assert axes(feats).mean(0).abs().max() < 1e-4
    # The top axes hold most of the data's variance, far more than 8 random directions would.
    centred = feats - feats.mean(0)
    assert float(axes(feats).square().sum() / centred.square().sum()) > 0.5


def test_spread_on_the_datas_axes_is_not_fooled_by_noise_the_data_does_not_have(more_reals):
    # Four designs drawn four times each, with strong per-pixel noise: far apart in pixels, still four clumps
    # along the directions in which the data varies. The pixel hinge reads them as spread; the axes see the clumps.
    a, b = more_reals[:16], more_reals[16:]
    axes = principal_axes(coarse_colours(more_reals), 8)
    torch.manual_seed(0)
    noisy_clumps = a[:4].repeat(4, 1, 1, 1) + 0.6 * torch.randn(16, *a.shape[1:])
    loss_px, stats_px, _, _ = neighbour_spread(noisy_clumps, b)
    loss_ax, stats_ax, f_ax, r_ax = neighbour_spread(noisy_clumps, b, axes=axes)
    assert float(stats_px["spread_ratio"]) > 1.0 and float(loss_px) < 0.05
    assert float(stats_ax["spread_ratio"]) < 0.6 and float(loss_ax) > 0.2
    assert f_ax.shape == r_ax.shape == (16, 8)  # the banks remember coordinates, not pixels
    # Data against data reads about the same in both spaces.
    assert 0.6 < float(neighbour_spread(a, b, axes=axes)[1]["spread_ratio"]) < 1.6


def test_training_with_the_spread_on_the_datas_axes(tmp_path):
    trainer, log = _tiny_run(tmp_path, spread=1.0, spread_axes=8)
    assert trainer.loss.spread_axes is not None and trainer.loss.spread_axes.axes.shape[0] == 8
    assert trainer.loss.spread_fake.rows.shape[1] == 8
    assert [r for r in log if "spread_ratio" in r]


def test_top_axes_are_those_of_a_smaller_fit(more_reals):
    feats = coarse_colours(more_reals)
    top, small = principal_axes(feats, 8).top(4), principal_axes(feats, 4)
    assert torch.allclose(top(feats).abs(), small(feats).abs(), atol=1e-3)  # the same axes up to sign


def test_uncovered_pull_leaves_covered_reals_alone(more_reals):
    a, b = more_reals[:16], more_reals[16:]
    axes = principal_axes(coarse_colours(more_reals), 8)
    loss, stats, _, _ = uncovered_pull(b, b, axes)  # every real has itself as a sample
    assert float(loss) == 0 and float(stats["covered"]) == 1
    collapsed, c_stats, _, _ = uncovered_pull(a[:1].repeat(16, 1, 1, 1), b, axes)
    assert float(collapsed) > 0.1 and float(c_stats["covered"]) < 0.5
    # Reals that recent fakes already reach pull nothing, however far this batch's fakes are.
    bank = axes(coarse_colours(b))
    banked, b_stats, f_now, r_now = uncovered_pull(a[:1].repeat(16, 1, 1, 1), b, axes, bank_fake=bank,
                                                    bank_real=axes(coarse_colours(a)))
    assert float(banked) == 0 and float(b_stats["covered"]) == 1
    assert f_now.shape == r_now.shape == (16, 8)  # the banks remember coordinates


def test_uncovered_pull_moves_only_the_fake_nearest_an_uncovered_real(more_reals):
    axes = principal_axes(coarse_colours(more_reals), 8)
    # Reals: six shoes and two near-black images, each other's nearest. Six fakes sit on the shoes, two more copy
    # shoe 0: the dark pair is left uncovered (k = 1: covered means a fake nearer than the real's nearest real).
    dark = torch.full_like(more_reals[:1], -0.9)
    b = torch.cat([more_reals[16:22], dark, dark + 0.05])
    fake = torch.cat([b[:6], b[:1], b[:1]]).clone().requires_grad_(True)
    loss, stats, _, _ = uncovered_pull(fake, b, axes, k=1)
    assert float(stats["covered"]) == pytest.approx(6 / 8)
    (grad,) = torch.autograd.grad(loss, fake)
    moved = grad.flatten(1).abs().sum(1) > 0
    nearest_dark = int(torch.cdist(axes(coarse_colours(b[6:])), axes(coarse_colours(fake.detach()))).sum(0).argmin())
    assert moved.tolist() == [i == nearest_dark for i in range(8)], "one fake answers for the dark pair"
    with torch.no_grad():
        step = fake - 0.5 * grad / grad.abs().amax()
        assert float(uncovered_pull(step, b, axes, k=1)[0]) < float(loss.detach())


def test_training_with_the_pull_on_the_datas_axes(tmp_path):
    trainer, log = _tiny_run(tmp_path, cover=1.0, cover_axes=4, spread=1.0, spread_axes=8)
    assert trainer.loss.cover_axes.axes.shape[0] == 4 and trainer.loss.spread_axes.axes.shape[0] == 8
    assert torch.equal(trainer.loss.cover_axes.axes, trainer.loss.spread_axes.axes[:4])  # one fit for both
    assert trainer.loss.cover_fake.rows.shape[1] == 4
    rows = [r for r in log if "covered" in r]
    assert rows and all(0 <= r["covered"] <= 1 for r in rows)
