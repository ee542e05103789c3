"""StyleGAN2 losses: non-saturating logistic loss, lazy R1, lazy path-length regularisation, style mixing.

From Karras et al. 2020 (StyleGAN2, section 3 and appendix B) and Mescheder et al. 2018 (R1). The regularisers
are "lazy": the loop calls them every few steps with `gain` = the interval, so their average weight is right.
Each method returns a scalar loss ready for `backward()` plus detached statistics for the log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..precision import float32_region
from .augment import AugmentPipe


@dataclass
class LossConfig:
    """Weights of the loss terms (TrainConfig supplies them)."""

    r1_gamma: float = 10.0
    pl_weight: float = 2.0
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mix: float = 0.9
    noise_mode: str = "random"  # per-pixel noise of G during training ("const" only for reproducible checks)
    diversity: float = 0.0  # weight of the pairwise-diversity hinge (0 = off, the reference's loss)
    mmd: float = 0.0  # weight of the kernel MMD between fakes and the batch's reals on coarse images (0 = off)
    mmd_bank: int = 0  # recent reals and fakes (features, per process) the MMD also compares against (0 = batch only)
    cover: float = 0.0  # weight of the nearest-sample pull: each real draws its nearest fake (0 = off)
    spread: float = 0.0  # weight of the neighbour-spread hinge: fakes as far from their neighbours as reals (0 = off)


# Outlines are taken on a coarse copy of the image (about 24 px on the short side): shape and colour blocks,
# not texture or noise, are what a collapsed model loses.
_DIVERSITY_SHORT_SIDE = 24
# Foreground: a pixel that differs from the canvas by more than ~57 levels of 255 in some channel. Lower steps (the
# metrics' 20 levels) let the blotchy haze of an early generator's canvas pass for outline variety: on a demo128
# run collapsed to one sausage-shaped silhouette at 32 kimg, 20 levels read the fakes' outlines as 1.8x as varied as
# the data's, 57 levels as 0.5x.
_FOREGROUND_STEP = 0.45
_OUTLINE_SHARPNESS = 20.0


def soft_outline(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> [N, H, W] soft foreground mask (1 on the shoe).

    The background is each image's own border colour (median per channel), not pure white: an early or collapsed
    generator draws tinted, noisy canvases, and a fixed white threshold would count their haze as outline variety.
    """
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, :, 0], x[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values.detach()[:, :, None, None]
    deviation = (x - background).abs().amax(dim=1)
    return torch.sigmoid((deviation - _FOREGROUND_STEP) * _OUTLINE_SHARPNESS)


def pair_distances(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean distance between images i and i + N/2 of a batch: (colour, outline), each a differentiable scalar.

    colour: mean absolute difference of the coarse images (in [-1, 1] units); outline: mean absolute difference
    of their soft foreground masks.
    """
    x = img.float()
    k = max(1, min(x.shape[2], x.shape[3]) // _DIVERSITY_SHORT_SIDE)
    x = F.avg_pool2d(x, k) if k > 1 else x
    mask = soft_outline(x)
    h = x.shape[0] // 2
    colour = (x[:h] - x[h : 2 * h]).abs().mean()
    outline = (mask[:h] - mask[h : 2 * h]).abs().mean()
    return colour, outline


def diversity_hinge(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """How far the fakes' pairwise distances fall short of the reals' in the same batch, relative to the reals'.

    A mode-seeking term in the spirit of Mao et al. 2019 (MSGAN) and Yang et al. 2019 (DSGAN), but held at the
    data's own level instead of rewarded without bound: it is zero while the fakes are as varied (in colour and
    in outline) as a batch of real images, so a model that already keeps the data's variety trains as the plain
    StyleGAN2 loss would. Returns (loss, stats with the fake/real ratios).
    """
    with torch.no_grad():
        real_colour, real_outline = pair_distances(real)
    fake_colour, fake_outline = pair_distances(fake)
    eps = 1e-4
    loss = (F.relu(real_colour - fake_colour) / (real_colour + eps)
            + F.relu(real_outline - fake_outline) / (real_outline + eps))
    return loss, {"div_colour": (fake_colour / (real_colour + eps)).detach(),
                  "div_outline": (fake_outline / (real_outline + eps)).detach()}


# Kernel widths of the MMD term, as multiples of the median squared distance between the batch's reals: one
# narrow (neighbours), one at the data's scale, one wide (global layout), so no single choice of width matters.
_MMD_WIDTHS = (0.25, 1.0, 4.0)
_NEIGHBOUR_K = 3  # the banked MMD's narrow kernel: the reals' k-th neighbour distance (the recall metric's k)


def _coarse(img: torch.Tensor) -> torch.Tensor:
    x = img.float()
    k = max(1, min(x.shape[2], x.shape[3]) // _DIVERSITY_SHORT_SIDE)
    return F.avg_pool2d(x, k) if k > 1 else x


def coarse_colours(img: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> [N, F]: the coarse image (~24 px short side) flattened, per-pixel scale.

    The space of the metrics' pixel PCA (colour pixels, no outline channel): the demo's clumping shows there (a
    sample's 3rd neighbour at 0.84x a real's, median of batches) and hardly in `coarse_features`, whose outline
    half is as spread for the samples as for the data.
    """
    x = _coarse(img)
    return x.flatten(1) / math.sqrt(x[0].numel())


def coarse_features(img: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> [N, F]: the coarse image (~24 px short side) and its soft outline, flattened.

    The outline counts as much as the colours (it is scaled to the same number of values), because shape is what
    the narrow demo networks lose first.
    """
    x = _coarse(img)
    mask = soft_outline(x) * 2 - 1  # the colours' [-1, 1] range
    return torch.cat([x.flatten(1), mask.flatten(1).repeat(1, 3)], dim=1) / math.sqrt(x[0].numel())


def _real_pair_scale(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Squared distances between the rows of r, the off-diagonal mask, and their median (the terms' unit of length)."""
    d_rr = torch.cdist(r, r).square()
    off = ~torch.eye(r.shape[0], dtype=torch.bool, device=r.device)
    return d_rr, off, d_rr[off].median().clamp_min(1e-6)


def kernel_mmd(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Unbiased squared MMD between fakes and reals (Gaussian kernels on `coarse_features`); gradients reach G only.

    Matching the whole distribution of coarse images, not just their mean spread, is a mode-covering signal
    (Li et al. 2015, generative moment matching; Dziugaite et al. 2015): every real draws the fakes near it, so
    silhouettes and colourways that G has dropped pull it back, which the per-image adversarial loss does not do.
    Returns (loss, stats).
    """
    f = coarse_features(fake)
    with torch.no_grad():
        r = coarse_features(real)
        d_rr, off_r, scale = _real_pair_scale(r)
    d_ff = torch.cdist(f, f).square()
    d_fr = torch.cdist(f, r).square()
    n_f = f.shape[0]
    off_f = ~torch.eye(n_f, dtype=torch.bool, device=f.device)
    loss = torch.zeros([], device=f.device)
    for width in _MMD_WIDTHS:
        s = 2 * width * scale
        k_ff = torch.exp(-d_ff / s)[off_f].mean()
        k_rr = torch.exp(-d_rr / s)[off_r].mean()
        k_fr = torch.exp(-d_fr / s).mean()
        loss = loss + k_ff + k_rr - 2 * k_fr
    return loss, {"mmd": loss.detach()}


def banked_kernel_mmd(fake: torch.Tensor, real: torch.Tensor, bank_fake: torch.Tensor | None = None,
                      bank_real: torch.Tensor | None = None) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
    """Kernel MMD whose other side is the batch plus a memory of recent fakes and reals (`coarse_features` rows).

    A batch of 16 sees too few of G's own images to notice that it keeps drawing the same few: fakes clump (in
    the demo's pixel-PCA space their 3rd-neighbour distance was 0.7x the data's, so recall stalled at 0.3 while
    coverage rose). Remembered fakes, detached, repel the current ones from where G has drawn lately; remembered
    reals attract them toward what the data holds. The loss is the MMD's gradient for the current fakes only:
    with empty banks it has exactly the gradient of `kernel_mmd` (its value omits the reals' constant term).
    With remembered reals it adds one narrow kernel at the data's own neighbour scale (the median distance of a
    real to its 3rd-nearest real): the wider kernels barely push apart two fakes that are closer than the data's
    neighbours, and that closeness is the clumping this term is for.
    Returns (loss, stats, this batch's fake features, this batch's real features), detached features for the bank.
    """
    f = coarse_features(fake)
    with torch.no_grad():
        r_now = coarse_features(real)
        r = r_now if bank_real is None else torch.cat([r_now, bank_real])
        others = f.detach() if bank_fake is None else torch.cat([f.detach(), bank_fake])
        d_rr, off, scale = _real_pair_scale(r)
        widths = list(_MMD_WIDTHS)
        if bank_real is not None and r.shape[0] > 2 * _NEIGHBOUR_K:
            neighbour = d_rr.masked_fill(~off, float("inf")).kthvalue(_NEIGHBOUR_K, dim=1).values.median()
            widths.append(float(neighbour.clamp_min(1e-6) / scale))
    n = f.shape[0]
    d_fo = torch.cdist(f, others).square()  # [n, n + m]: column i of the first n is image i itself
    d_fr = torch.cdist(f, r).square()
    not_self = torch.ones_like(d_fo, dtype=torch.bool)
    not_self[:, :n] = ~torch.eye(n, dtype=torch.bool, device=f.device)
    loss = torch.zeros([], device=f.device)
    value = torch.zeros([], device=f.device)
    for width in widths:
        s = 2 * width * scale
        k_fo = torch.exp(-d_fo / s)
        k_fr = torch.exp(-d_fr / s)
        # d/df_i of the unbiased MMD^2 over n fakes is (2/n) * mean_j dk(f_i, f_j) - (2/n) * mean_r dk(f_i, r):
        # so, with the other side detached, 2 * mean_i of the row means.
        loss = loss + 2 * ((k_fo * not_self).sum(1) / not_self.sum(1) - k_fr.mean(1)).mean()
        with torch.no_grad():
            k_rr = torch.exp(-d_rr / s)
            value = value + k_fo[not_self].mean() + k_rr[off].mean() - 2 * k_fr.mean()
    return loss, {"mmd": value}, f.detach(), r_now


def nearest_sample_pull(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Each real image pulls the fake nearest to it (on `coarse_features`), relative to the reals' own spacing.

    The batch form of implicit maximum likelihood estimation (Li & Malik 2018): a generator that drops part of the
    data leaves those reals with no sample nearby, and only they pay, through the one sample closest to them. The
    MMD pulls every fake toward every real, weighted by a kernel, so a real far from all fakes barely pulls at all;
    here the pull of an uncovered real is the strongest. That is the recall figure's question (is every real image
    near some sample), asked of each batch. Loss: the mean over reals of the squared distance to the nearest fake,
    divided by the median squared distance between two reals (detached), so 1 means "as far as two reals are".
    Returns (loss, stats).
    """
    f = coarse_features(fake)
    with torch.no_grad():
        r = coarse_features(real)
        _, _, scale = _real_pair_scale(r)
    nearest = torch.cdist(r, f).square().min(dim=1).values  # [n_real]: the gradient reaches each real's nearest fake
    loss = nearest.mean() / scale
    return loss, {"cover": loss.detach()}


# The coverage metric's k (Naeem et al. 2020): a real counts as covered when a fake lies within its k-th nearest real.
_COVERAGE_K = 5


def uncovered_pull(fake: torch.Tensor, real: torch.Tensor, axes: "PrincipalAxes",
                   bank_fake: torch.Tensor | None = None, bank_real: torch.Tensor | None = None,
                   k: int = _COVERAGE_K) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
    """The nearest-sample pull asked as the coverage metric asks it: only reals no recent fake covers pull.

    Why: with every real pulling its nearest of a batch's 16 fakes, a real whose region G already draws still drags
    some fake toward the dense middle of the data, which is how the plain pull traded recall for coverage in run J.
    Here, on the data's principal axes (the metrics' space), a real of the batch is covered when some fake (this
    batch's or a recent one) lies within its k-th nearest-real distance (among the batch's and recent reals, as many
    rows as the fakes); only the uncovered ones pull their nearest fake of this batch. Loss: the sum over uncovered
    reals of that squared distance, over the number of reals and the median squared distance between two reals
    (detached), so the weight means what `nearest_sample_pull`'s does when nothing is covered. Measured on the demo
    run (models/README.md, twelfth sitting): it did not lift coverage, and precision fell; the nearest of 16 fakes
    is still far from an uncovered real.
    Returns (loss, stats, this batch's fake rows, this batch's real rows), detached rows for the banks.
    """
    f = axes(coarse_colours(fake))
    with torch.no_grad():
        r_now = axes(coarse_colours(real))
        r = r_now if bank_real is None else torch.cat([r_now, bank_real])
        others = f.detach() if bank_fake is None else torch.cat([f.detach(), bank_fake])
        rows = min(r.shape[0], others.shape[0])
        r, others = r[:rows], others[:rows]
        kk = max(1, min(k, r.shape[0] - 1))
        radius = _without_self(torch.cdist(r_now, r)).kthvalue(kk, dim=1).values
        uncovered = torch.cdist(r_now, others).min(dim=1).values > radius
        _, _, scale = _real_pair_scale(r_now)
    nearest = torch.cdist(r_now, f).square().min(dim=1).values
    loss = (nearest * uncovered).sum() / (r_now.shape[0] * scale)
    stats = {"cover": loss.detach(), "covered": 1 - uncovered.float().mean()}
    return loss, stats, f.detach(), r_now


def _without_self(d: torch.Tensor) -> torch.Tensor:
    """Distances [n, m] from rows that are also the first n columns: each row's distance to itself set to inf."""
    return d.masked_fill(torch.eye(d.shape[0], d.shape[1], dtype=torch.bool, device=d.device), float("inf"))


# The neighbour-spread hinge compares each fake's nearest neighbours among this many recent fakes with each real's
# among as many recent reals: enough rows that "nearest" means the data's neighbour scale, not a batch's.
SPREAD_BANK = 512


@dataclass(frozen=True)
class PrincipalAxes:
    """A projection onto the data's main directions of variation: features [N, F] -> coordinates [N, K]."""

    mean: torch.Tensor  # [F]
    axes: torch.Tensor  # [K, F], orthonormal rows

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) @ self.axes.T

    def to(self, device: torch.device | str) -> "PrincipalAxes":
        return PrincipalAxes(self.mean.to(device), self.axes.to(device))

    def top(self, k: int) -> "PrincipalAxes":
        """The first k axes (those of `principal_axes(features, k)`: the top axes do not depend on how many)."""
        return PrincipalAxes(self.mean, self.axes[:k])


def principal_axes(features: torch.Tensor, k: int) -> PrincipalAxes:
    """The top-k principal axes of feature rows [N, F] (e.g. `coarse_colours` of training images)."""
    x = features.double()
    mean = x.mean(0)
    k = max(1, min(k, x.shape[0] - 1, x.shape[1]))
    _, _, vt = torch.linalg.svd(x - mean, full_matrices=False)
    return PrincipalAxes(mean.float(), vt[:k].float().contiguous())


def neighbour_spread(fake: torch.Tensor, real: torch.Tensor, bank_fake: torch.Tensor | None = None,
                     bank_real: torch.Tensor | None = None, k: int = _NEIGHBOUR_K,
                     axes: PrincipalAxes | None = None) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
    """How much closer each fake lies to its k nearest fakes than a real lies to its k-th nearest real.

    Why: the demo's samples clump. In the pixel-PCA space of the metrics a sample's 3rd-nearest other sample is 0.7x
    as far as a real image's 3rd-nearest other real, and recall (is each real inside some sample's 3-NN ball) is
    ruled by those radii: scaled by 1.2 they would lift the demo's recall from 0.19 to 0.6. Attracting fakes to
    reals (MMD, the nearest-sample pull) moves them closer to the data but tightens the clumps further. This term
    only repels, and only below the data's own neighbour distance: zero for fakes as spread out as the reals, so it
    cannot reward scattering beyond the data. On `coarse_colours` (24-px images; fine noise averages out), or, with
    `axes`, on their coordinates along the data's principal axes: there, variety the data does not have (a demo
    run's samples kept 14% of their variance off the data's top 64 axes, the data 5.5%) no longer passes for spread:
    that run read 1.09x the data's neighbour distance in pixels and 0.91x on the axes, where the metrics look.
    Both sides use the same number of rows (the batch plus equally long banks), in the same space.
    Returns (loss, stats, this batch's fake features, this batch's real features), detached features for the banks.
    """
    f = coarse_colours(fake)
    if axes is not None:
        f = axes(f)
    with torch.no_grad():
        r_now = coarse_colours(real)
        if axes is not None:
            r_now = axes(r_now)
        r = r_now if bank_real is None else torch.cat([r_now, bank_real])
        others = f.detach() if bank_fake is None else torch.cat([f.detach(), bank_fake])
        rows = min(r.shape[0], others.shape[0])
        r, others = r[:rows], others[:rows]
        d_rr = _without_self(torch.cdist(r_now, r))
        kk = max(1, min(k, rows - 1))
        target = d_rr.kthvalue(kk, dim=1).values.median().clamp_min(1e-6)
    d_ff = _without_self(torch.cdist(f, others))
    nearest = d_ff.topk(kk, dim=1, largest=False).values  # [n, k]: gradients push each fake from its closest ones
    loss = F.relu(target - nearest).mean() / target
    with torch.no_grad():
        ratio = nearest[:, -1].median() / target
    return loss, {"spread": loss.detach(), "spread_ratio": ratio}, f.detach(), r_now


class MemoryBank:
    """A fixed-size first-in-first-out store of feature rows (the MMD's recent fakes or reals)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: torch.Tensor | None = None

    def push(self, rows: torch.Tensor) -> None:
        """Remember `rows` (detached), forgetting the oldest beyond `size` (a bank of size 0 remembers nothing)."""
        if self.size <= 0:
            return
        rows = rows.detach()[-self.size:]  # newest first: the latest batch, then what was remembered before it
        self.rows = rows if self.rows is None else torch.cat([rows, self.rows])[: self.size]

    def __len__(self) -> int:
        return 0 if self.rows is None else self.rows.shape[0]


class StyleGAN2Loss:
    """Holds G, D, the augmentation pipe and the path-length running mean; one method per training phase."""

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, augment: AugmentPipe | None, cfg: LossConfig,
                 reduce_mean=None, spread_axes: PrincipalAxes | None = None,
                 cover_axes: PrincipalAxes | None = None) -> None:
        self.G, self.D, self.augment, self.cfg = G, D, augment, cfg
        self.spread_axes = spread_axes  # the neighbour-spread hinge's space (None: coarse pixels)
        self.cover_axes = cover_axes  # the pull's space, where only uncovered reals pull (None: every real, pixels)
        self.pl_mean = torch.zeros([], device=next(G.parameters()).device)
        self.reduce_mean = reduce_mean  # callable averaging a tensor over processes (multi-GPU), or None
        # Not saved in checkpoints: after a resume they refill within mmd_bank / batch steps.
        self.bank_fake, self.bank_real = MemoryBank(cfg.mmd_bank), MemoryBank(cfg.mmd_bank)
        spread_rows = SPREAD_BANK if cfg.spread > 0 else 0
        self.spread_fake, self.spread_real = MemoryBank(spread_rows), MemoryBank(spread_rows)
        cover_rows = SPREAD_BANK if cfg.cover > 0 and cover_axes is not None else 0
        self.cover_fake, self.cover_real = MemoryBank(cover_rows), MemoryBank(cover_rows)

    # -- forward helpers -------------------------------------------------------------------------------

    def run_G(self, z: torch.Tensor, c: torch.Tensor | None, update_w_avg: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """z -> (images, ws); with probability style_mix the layers from a random cutoff on take a second w."""
        ws = self.G.mapping(z, c, update_w_avg=update_w_avg)
        if self.cfg.style_mix > 0 and ws.shape[1] > 1 and float(torch.rand([])) < self.cfg.style_mix:
            cutoff = int(torch.randint(1, ws.shape[1], []))
            ws2 = self.G.mapping(torch.randn_like(z), c, update_w_avg=False)
            layer = torch.arange(ws.shape[1], device=ws.device)[None, :, None]
            ws = torch.where(layer < cutoff, ws, ws2)
        return self.G.synthesis(ws, noise_mode=self.cfg.noise_mode), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.augment is not None:
            # Float32 whatever the phase computes in: 3-channel images are cheap, and under bf16 autocast the
            # pipe's resampling products and grid sampling ran 1.6x slower (casts, slow bf16 kernels).
            with float32_region(img.device.type):
                img = self.augment(img.float())
        return self.D(img, c).float()  # losses and their reductions stay float32 whatever D computed in

    def run_D_pair(self, real: torch.Tensor, fake: torch.Tensor, c_real: torch.Tensor | None,
                   c_fake: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """D on reals and fakes in one batch (bigger, faster matrix products on CPU) with the same result.

        Minibatch-stddev groups are sample i with i + N/G, ...; the two halves are interleaved in blocks of
        N/G so every group stays all-real or all-fake, exactly as two separate calls would group them.
        """
        n = real.shape[0]
        group = getattr(self.D.cfg, "mbstd_group", 0)
        if group <= 0 or n % group or fake.shape[0] != n or min(group, 2 * n) != min(group, n):
            return self.run_D(real, c_real), self.run_D(fake, c_fake)
        g = min(group, n)

        def merge(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.cat([a.reshape(g, n // g, *a.shape[1:]), b.reshape(g, n // g, *b.shape[1:])], 1).flatten(0, 1)

        both = merge(real, fake)
        c = merge(c_real, c_fake) if c_real is not None else None
        logits = self.run_D(both, c).reshape(g, 2 * n // g, -1)
        return logits[:, : n // g].reshape(n, -1), logits[:, n // g :].reshape(n, -1)

    # -- phases ------------------------------------------------------------------------------------------

    def g_main(self, z: torch.Tensor, c: torch.Tensor | None,
               real: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Non-saturating G loss softplus(-D(G(z))). Returns (loss, detached fakes for the D step, stats).

        With `diversity` > 0 and the iteration's reals given, adds the diversity hinge (fakes at least as varied
        as the reals of the same batch); with `mmd` > 0, the kernel MMD between the fakes and those reals; with
        `cover` > 0, the pull of each of those reals on its nearest fake; with `spread` > 0, the neighbour-spread
        hinge against recent fakes and reals.
        """
        img, _ = self.run_G(z, c, update_w_avg=True)
        logits = self.run_D(img, c)
        loss = F.softplus(-logits).mean()
        stats = {"loss_G": loss.detach(), "D_fake_G": logits.detach().mean()}
        if self.cfg.diversity > 0 and real is not None and img.shape[0] >= 2:
            div, div_stats = diversity_hinge(img, real)
            loss = loss + self.cfg.diversity * div
            stats.update(div_stats, loss_div=div.detach())
        if self.cfg.mmd > 0 and real is not None and img.shape[0] >= 2 and real.shape[0] >= 2:
            if self.cfg.mmd_bank > 0:
                mmd, mmd_stats, f_now, r_now = banked_kernel_mmd(img, real, self.bank_fake.rows, self.bank_real.rows)
                self.bank_fake.push(f_now)
                self.bank_real.push(r_now)
            else:
                mmd, mmd_stats = kernel_mmd(img, real)
            loss = loss + self.cfg.mmd * mmd
            stats.update(mmd_stats)
        if self.cfg.spread > 0 and real is not None and img.shape[0] >= 2 and real.shape[0] >= 2:
            spread, spread_stats, f_now, r_now = neighbour_spread(img, real, self.spread_fake.rows,
                                                                  self.spread_real.rows, axes=self.spread_axes)
            self.spread_fake.push(f_now)
            self.spread_real.push(r_now)
            loss = loss + self.cfg.spread * spread
            stats.update(spread_stats)
        if self.cfg.cover > 0 and real is not None and img.shape[0] >= 1 and real.shape[0] >= 2:
            if self.cover_axes is not None:
                cover, cover_stats, f_now, r_now = uncovered_pull(img, real, self.cover_axes, self.cover_fake.rows,
                                                                  self.cover_real.rows)
                self.cover_fake.push(f_now)
                self.cover_real.push(r_now)
            else:
                cover, cover_stats = nearest_sample_pull(img, real)
            loss = loss + self.cfg.cover * cover
            stats.update(cover_stats)
        return loss, img.detach(), stats

    def g_pl(self, z: torch.Tensor, c: torch.Tensor | None, gain: float,
             noise: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Path-length regulariser on a shrunk batch: (|J_w^T y| - a)^2, a the running mean of lengths.

        As in the reference, the penalty uses the *updated* running mean a' = lerp(a, mean(lengths), decay)
        without detaching it, so part of the gradient flows through the batch mean (matching the reference's
        own gradients to 1e-5; tests/test_train_grads.py). `noise` (the random image-space direction y,
        already divided by sqrt(H * W)) is drawn when not given.
        """
        n = max(z.shape[0] // self.cfg.pl_batch_shrink, 1)
        img, ws = self.run_G(z[:n], c[:n] if c is not None else None)
        img = img.float()
        if noise is None:
            noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.float().square().sum(2).mean(1).sqrt()
        batch_mean = lengths.mean()
        if self.reduce_mean is not None:
            # The value is the mean over processes; the gradient flows through this process's share only.
            batch_mean = batch_mean + (self.reduce_mean(batch_mean.detach()) - batch_mean.detach())
        pl_mean = self.pl_mean.lerp(batch_mean, self.cfg.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        penalty = (lengths - pl_mean).square()
        loss = penalty.mean() * self.cfg.pl_weight * gain
        return loss, {"loss_pl": penalty.detach().mean(), "pl_mean": self.pl_mean.detach().clone()}

    def d_main(self, real: torch.Tensor, c_real: torch.Tensor | None, fake: torch.Tensor,
               c_fake: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """softplus(D(fake)) + softplus(-D(real)). Returns (loss, real logits for ADA, stats)."""
        real_logits, fake_logits = self.run_D_pair(real, fake, c_real, c_fake)
        loss_fake = F.softplus(fake_logits).mean()
        loss_real = F.softplus(-real_logits).mean()
        loss = loss_fake + loss_real
        stats = {"loss_D": loss.detach(), "D_real": real_logits.detach().mean(), "D_fake": fake_logits.detach().mean(),
                 "sign_real": real_logits.detach().sign().mean()}
        return loss, real_logits.detach(), stats

    def d_r1(self, real: torch.Tensor, c_real: torch.Tensor | None, gain: float) -> tuple[torch.Tensor, dict]:
        """R1: gamma / 2 * |grad_x D(x)|^2 on reals (gradient with respect to the un-augmented image)."""
        x = real.detach().requires_grad_(True)
        logits = self.run_D(x, c_real)
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        penalty = grad.square().sum(dim=[1, 2, 3])
        loss = (penalty * (self.cfg.r1_gamma / 2)).mean() * gain
        return loss, {"loss_r1": penalty.detach().mean()}
