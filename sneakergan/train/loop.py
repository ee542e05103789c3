"""The training loop: data -> G/D phases with lazy regularisation -> EMA -> ADA -> ticks, snapshots, resume.

One iteration (per process, batch_gpu = batch / world_size images) runs the phases in order (`Phase` data built
by `Trainer._phases`, as in the reference's training loop), each under its precision's autocast:
  Gmain  every iteration        G(z) -> augment -> D -> softplus(-logits); the fakes are kept for Dmain.
  Greg   every pl_interval      path-length penalty on batch / pl_batch_shrink (its own Adam step).
  Dmain  every iteration        reals and the kept fakes, augmented, through D in one batch.
  Dreg   every r1_interval      R1 on reals (its own Adam step).
then G_ema moves toward G (half-life ema_kimg, ramped up early) and ADA moves p every ada_interval iterations.
Lazy regularisation: each reg phase is an extra optimiser step, so Adam's lr and betas are scaled by
interval / (interval + 1) as in StyleGAN2, appendix B.

Statistics stay on the device and are read once per tick (train/stats.py); the display is train/progress.py;
files go through train/rundir.py; checks before the first step are train/preflight.py; optimisers and EMA
train/optim.py; multi-process helpers train/distributed.py.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import UserError
from ..modelfile import ModelFileError, save_checkpoint
from ..nets import Discriminator, Generator, NetworkConfig
from .augment import AdaController, AugmentPipe
from .config import ConfigError, TrainConfig, network_config
from .dataset import DatasetError, ImageDataset, InfiniteSampler, to_float
from .distributed import Dist, broadcast_module, init_distributed, sync_grads
from .loss import LossConfig, PrincipalAxes, StyleGAN2Loss, coarse_colours, principal_axes
from .metrics_hook import TrainMetrics
from .mixed import MixedPrecision, enable_low_precision
from .optim import ema_beta, freeze_d_blocks, make_adam, restore_optimizer, update_ema
from .preflight import check_network_fits_data, check_run_folder, check_target
from .progress import PlainLines, make_display
from .rundir import LATEST, LOG_NAME, REALS, RunDir, RunDirError, nimg_tag, open_checkpoint, read_log
from .state import rng_state, set_rng_state
from .stats import TickStats

# Images the spread hinge's principal axes are fitted on (about a second to read and decompose at 64 px).
SPREAD_AXES_IMAGES = 1024

__all__ = ["Trainer", "RunResult", "TrainError", "train", "find_checkpoint", "read_log", "nimg_tag", "LATEST",
           "LOG_NAME", "enable_bf16", "Phase"]


class TrainError(UserError):
    """A training run that cannot start or continue; the message is one clear line."""


# -- precision -------------------------------------------------------------------------------------------


def enable_bf16(modules: list[torch.nn.Module], device_type: str) -> None:
    """Run these modules under bf16 autocast and hand float32 back, so only they compute in low precision.

    The loop itself uses `MixedPrecision` (train/mixed.py) for --precision; kept for callers that want bf16 in
    chosen blocks only.
    """
    enable_low_precision(modules, device_type, torch.bfloat16)


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint a resume of `path` would load (loads it once to check; use rundir.open_checkpoint to keep it)."""
    try:
        ckpt = open_checkpoint(path, nets=())
    except RunDirError as e:
        raise TrainError(str(e)) from None
    return ckpt.path.with_suffix("")


# -- the phases ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Batch:
    """What the phases of one iteration share: the reals, and the fakes Gmain made for Dmain."""

    real: torch.Tensor
    real_c: torch.Tensor | None
    fake: torch.Tensor | None = None
    fake_c: torch.Tensor | None = None


@dataclasses.dataclass(frozen=True)
class Phase:
    """One optimiser step of an iteration: which network it trains, how often, in which precision.

    `run(batch)` returns (loss, detached statistics); the loop does the backward and the optimiser step.
    """

    name: str
    net: str  # "G" or "D"
    interval: int  # runs when batch_idx % interval == 0
    run: Callable[[Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]]
    precision: str  # resolved: fp32 | bf16 | fp16


@dataclasses.dataclass
class RunResult:
    """What a finished (or stopped) run leaves behind."""

    out: Path
    cur_nimg: int
    checkpoint: Path | None
    last_stats: dict[str, float]


# -- the trainer ---------------------------------------------------------------------------------------------


class Trainer:
    """Builds everything from a TrainConfig, checks the whole configuration, and runs the loop.

    Every mistake that can be found before training (data vs preset, metrics weights, run folder, resume
    target, machine) raises a one-line UserError from the constructor, before anything is written.
    `checkpoint`: an already loaded resume / transfer checkpoint (so a resume reads it once).
    """

    def __init__(self, cfg: TrainConfig, progress: bool = True, console: Any = None,
                 on_tick: Callable[[dict], None] | None = None, display: PlainLines | None = None,
                 checkpoint: Any = None) -> None:
        del console  # kept for callers of the old signature; output goes through `display`
        self.cfg = cfg
        self.on_tick = on_tick
        self.dist, self.device = init_distributed(cfg.device)
        self.is_main = self.dist.is_main
        self.display = (display or make_display(progress)) if self.is_main else None
        try:
            self.mp = MixedPrecision.for_run(cfg.precision, self.device)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.precision = self.mp.precision
        if cfg.compile:
            # The hook for torch.compile: R1 and path length need a double backward, which compiled graphs do
            # not support, so compiling needs separate forward-only networks for the main phases (issue 15).
            raise ConfigError("--compile is not available in this build's training step yet (train without it)")
        if self.device.type == "cpu":
            torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        if cfg.batch % self.dist.world_size:
            raise TrainError(f"--batch {cfg.batch} must be divisible by the number of processes ({self.dist.world_size})")
        self.batch_gpu = cfg.batch // self.dist.world_size
        self.out = Path(cfg.out)
        self._setup(checkpoint)
        self.dist.barrier()  # every rank has checked the run folder before rank 0 writes to it

    # -- setup ---------------------------------------------------------------------------------------

    def _setup(self, ckpt: Any) -> None:
        cfg = self.cfg
        try:
            self.dataset = ImageDataset(cfg.data, mirror=cfg.mirror, use_labels=cfg.cond)
        except DatasetError as e:
            raise TrainError(str(e)) from None
        ds = self.dataset

        if cfg.resume:
            ckpt = ckpt if ckpt is not None else self._open(cfg.resume, ("G", "D", "G_ema"))
            if "train_config" not in ckpt.state:
                raise TrainError(f"{ckpt.path}: not a training checkpoint (no train_config); use finetune --from")
            net_cfg = ckpt.config
        elif cfg.transfer_from:
            ckpt = ckpt if ckpt is not None else self._open(cfg.transfer_from, ("G", "D", "G_ema"))
            ckpt = _transfer_nets(ckpt)
            net_cfg = ckpt.config
            if cfg.cond and net_cfg.c_dim != ds.label_dim:
                raise TrainError(f"the source model takes {net_cfg.c_dim} labels, the dataset has {ds.label_dim}")
        else:
            ckpt = None
            net_cfg = network_config(cfg, ds.width, ds.height, ds.label_dim)
        check_network_fits_data(net_cfg, ds, cfg, self.batch_gpu)
        self.net_cfg: NetworkConfig = net_cfg
        self.metrics = TrainMetrics(cfg, self.device, self._warn)

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        if ckpt is not None:
            self.G = ckpt.nets["G"].to(self.device)
            self.D = ckpt.nets["D"].to(self.device)
            self.G_ema = ckpt.nets["G_ema"].to(self.device)
        else:
            self.G = Generator(net_cfg).to(self.device)
            self.D = Discriminator(net_cfg).to(self.device)
            self.G_ema = copy.deepcopy(self.G)
        self.G.train().requires_grad_(False)
        self.D.train().requires_grad_(False)
        self.G_ema.eval().requires_grad_(False)
        for m in (self.G, self.D, self.G_ema):
            broadcast_module(m, self.dist)
        self.g_params = list(self.G.parameters())
        self.d_params = freeze_d_blocks(self.D, cfg.freeze_d)
        self.mp.setup(self.G, self.D, self.G_ema)  # channels-last maps for bf16; fp16 blocks as the reference's

        self.augment = AugmentPipe(cfg.augpipe, p=cfg.p).to(self.device) if cfg.aug != "none" else None
        self.ada = None
        if cfg.aug == "ada":
            self.ada = AdaController(self.augment, target=cfg.target, ada_kimg=cfg.ada_kimg, interval=cfg.ada_interval,
                                     reduce=self.dist.all_reduce_sum if self.dist.enabled else None)
        # One fit serves both terms: the top K axes are the same whichever K the fit asked for.
        n_axes = max(cfg.spread_axes if cfg.spread > 0 else 0, cfg.cover_axes if cfg.cover > 0 else 0)
        axes = self._principal_axes(ds, n_axes) if n_axes > 0 else None
        self.loss = StyleGAN2Loss(
            self.G, self.D, self.augment,
            LossConfig(r1_gamma=cfg.gamma, pl_weight=cfg.pl_weight, pl_decay=cfg.pl_decay,
                       pl_batch_shrink=cfg.pl_batch_shrink, style_mix=cfg.style_mix,
                       diversity=cfg.diversity, mmd=cfg.mmd, mmd_bank=cfg.mmd_bank,
                       cover=cfg.cover, spread=cfg.spread),
            reduce_mean=self.dist.all_reduce_mean if self.dist.enabled else None,
            spread_axes=axes.top(cfg.spread_axes) if axes is not None and cfg.spread > 0 and cfg.spread_axes > 0
            else None,
            cover_axes=axes.top(cfg.cover_axes) if axes is not None and cfg.cover > 0 and cfg.cover_axes > 0 else None)
        self.g_reg = cfg.pl_interval if cfg.pl_weight > 0 else None
        self.d_reg = cfg.r1_interval if cfg.gamma > 0 else None
        self.opt_G = make_adam(self.g_params, cfg.lr, self.g_reg)
        self.opt_D = make_adam(self.d_params, cfg.lr, self.d_reg)
        self.phases = self._phases()

        self.cur_nimg = 0
        self.batch_idx = 0
        self.elapsed = 0.0
        self._saved_rng = None
        self.resumed = bool(cfg.resume)
        if cfg.resume:
            self._restore(ckpt)
        self.source = ckpt.path.with_suffix("") if ckpt is not None else None

        # Labels for fakes are drawn from the dataset's label distribution.
        self.labels = None
        if self.net_cfg.c_dim:
            self.labels = torch.stack([ds.label(i) for i in range(ds.num_images)]).to(self.device)
        check_target(cfg, self.cur_nimg, self.resumed)
        self.in_place = check_run_folder(self.out, self.source, self.cur_nimg, self.resumed)
        if len(ds) < self.batch_gpu:  # only once everything is known to be fine
            self._warn(f"note: {len(ds)} images, fewer than a batch ({self.batch_gpu}); images repeat within batches")

    def _principal_axes(self, ds, k: int) -> PrincipalAxes:
        """The data's top k principal axes for the spread hinge and the pull, from up to SPREAD_AXES_IMAGES images
        evenly spaced through the dataset: the same on every process and after every resume, so nothing is saved."""
        n = min(SPREAD_AXES_IMAGES, ds.num_images)
        idx = np.linspace(0, ds.num_images - 1, n).round().astype(int)
        images = to_float(torch.stack([ds[int(i)][0] for i in idx]), self.net_cfg.invert)
        return principal_axes(coarse_colours(images), k).to(self.device)

    def _open(self, path: str, nets: tuple[str, ...]):
        try:
            return open_checkpoint(path, nets=nets, device=self.device)
        except (RunDirError, ModelFileError) as e:
            raise TrainError(str(e)) from None

    def _phases(self) -> list[Phase]:
        """The iteration as data: (name, network, interval, step, precision).

        The regularisers run their networks in the run's precision, as the reference runs R1 and path length
        through its fp16 layers; their penalties and reductions are float32 (loss.py), and their bf16 gradients
        stay within a few percent of the reference's float32 ones (tests/test_precision.py). Measured: demo64's
        full bf16 step 15% faster than with float32 regularisers (2 threads, batch 32).
        """
        prec = self.precision
        phases = [Phase("Gmain", "G", 1, self._g_main, prec)]
        if self.g_reg:
            phases.append(Phase("Greg", "G", self.g_reg, self._g_reg, prec))
        phases.append(Phase("Dmain", "D", 1, self._d_main, prec))
        if self.d_reg:
            phases.append(Phase("Dreg", "D", self.d_reg, self._d_reg, prec))
        return phases

    def _restore(self, ckpt) -> None:
        st = ckpt.state
        restore_optimizer(ckpt, "G", self.opt_G)
        restore_optimizer(ckpt, "D", self.opt_D)
        self.cur_nimg = int(st.get("cur_nimg", round(float(st.get("kimg", 0)) * 1000)))
        self.batch_idx = int(st.get("batch_idx", 0))
        self.elapsed = float(st.get("elapsed_s", 0.0))
        if self.augment is not None:
            # A fixed p is the run's setting (a resume with `--aug fixed --p X` means X); ADA's p is state.
            p = self.cfg.p if self.cfg.aug == "fixed" else float(st.get("augment_p", self.cfg.p))
            self.augment.p.fill_(p)
        if self.ada is not None and "ada" in st:
            self.ada.load_state_dict({**st["ada"], "p": float(st.get("augment_p", 0.0))})
        if "pl_mean" in st:
            self.loss.pl_mean.fill_(float(st["pl_mean"]))
        self._saved_rng = st.get("rng") if self.dist.world_size == 1 else None

    def _print(self, msg: str) -> None:
        if self.display is not None:
            self.display.message(msg)

    def _warn(self, msg: str) -> None:
        if self.display is not None:
            self.display.warn(msg)

    def describe(self) -> str:
        """One line saying what this run will do."""
        cfg, net = self.cfg, self.net_cfg
        what = "resuming" if cfg.resume else ("fine-tuning" if cfg.transfer_from else "training")
        source = f"from {cfg.transfer_from}" if cfg.transfer_from else cfg.preset
        return (f"{what} {net.img_width}x{net.img_height} ({source}) on {self.dataset.num_images} images"
                f"{' (+ mirrored)' if cfg.mirror else ''}, batch {cfg.batch}, gamma {cfg.gamma:g}, "
                f"aug {cfg.aug}/{cfg.augpipe}, {self.precision}, from {self.cur_nimg / 1000:g} to {cfg.kimg:g} kimg "
                f"-> {cfg.out}")

    # -- data ----------------------------------------------------------------------------------------

    def _loader(self):
        cfg = self.cfg
        sampler = InfiniteSampler(len(self.dataset), seed=cfg.seed, rank=self.dist.rank,
                                  world_size=self.dist.world_size, start=self.cur_nimg)
        kwargs: dict[str, Any] = {}
        if cfg.workers > 0:
            kwargs.update(prefetch_factor=4, persistent_workers=True)
        # A private generator: creating the iterator must not consume the global RNG (exact resume).
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_gpu, sampler=sampler,
                                             num_workers=cfg.workers, pin_memory=self.device.type == "cuda",
                                             generator=torch.Generator().manual_seed(cfg.seed), **kwargs)
        return iter(loader)

    def _fake_labels(self, n: int) -> torch.Tensor | None:
        if self.labels is None:
            return None
        idx = torch.randint(self.labels.shape[0], (n,), device=self.device)
        return self.labels[idx]

    # -- one iteration -------------------------------------------------------------------------------

    def _g_main(self, b: Batch) -> tuple[torch.Tensor, dict]:
        n = b.real.shape[0]
        z = torch.randn(n, self.net_cfg.z_dim, device=self.device)
        b.fake_c = self._fake_labels(n)
        loss, b.fake, stats = self.loss.g_main(z, b.fake_c, real=b.real)
        return loss, stats

    def _g_reg(self, b: Batch) -> tuple[torch.Tensor, dict]:
        n = b.real.shape[0]
        z = torch.randn(n, self.net_cfg.z_dim, device=self.device)
        return self.loss.g_pl(z, self._fake_labels(n), gain=self.g_reg)

    def _d_main(self, b: Batch) -> tuple[torch.Tensor, dict]:
        loss, real_logits, stats = self.loss.d_main(b.real, b.real_c, b.fake, b.fake_c)
        if self.ada is not None:
            self.ada.accumulate(real_logits)
        return loss, stats

    def _d_reg(self, b: Batch) -> tuple[torch.Tensor, dict]:
        return self.loss.d_r1(b.real, b.real_c, gain=self.d_reg)

    def _step(self, real_u8: torch.Tensor, real_c: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration: every phase due at this batch index, then EMA and ADA. Returns device statistics."""
        cfg, dev = self.cfg, self.device
        batch = Batch(to_float(real_u8.to(dev, non_blocking=True), invert=self.net_cfg.invert),
                      real_c.to(dev) if self.net_cfg.c_dim else None)
        stats: dict[str, torch.Tensor] = {}
        for phase in self.phases:
            if self.batch_idx % phase.interval:
                continue
            params, opt = (self.g_params, self.opt_G) if phase.net == "G" else (self.d_params, self.opt_D)
            for p in params:
                p.requires_grad_(True)
            with self.mp.phase() if phase.precision != "fp32" else contextlib.nullcontext():
                loss, s = phase.run(batch)
            loss.backward()
            for p in params:
                p.requires_grad_(False)
            stats.update(s)
            self._opt_step(opt, params)

        update_ema(self.G_ema, self.G, ema_beta(cfg.batch, cfg.ema_kimg, cfg.ema_rampup, self.cur_nimg))
        self.cur_nimg += cfg.batch
        self.batch_idx += 1
        if self.ada is not None:
            rt = self.ada.update(cfg.batch)
            if rt is not None:
                stats["r_t"] = rt
        return stats

    def _opt_step(self, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> None:
        sync_grads(params, self.dist)
        if self.device.type == "cuda":
            for p in params:
                if p.grad is not None:
                    torch.nan_to_num_(p.grad, nan=0, posinf=1e5, neginf=-1e5)
        opt.step()
        opt.zero_grad(set_to_none=True)

    # -- outputs -------------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "kimg": self.cur_nimg / 1000,
            "cur_nimg": self.cur_nimg,
            "batch_idx": self.batch_idx,
            "augment_p": float(self.augment.p) if self.augment is not None else 0.0,
            "ada": self.ada.state_dict() if self.ada is not None else None,
            "pl_mean": float(self.loss.pl_mean),
            "seed": self.cfg.seed,
            "data_position": self.cur_nimg,
            "elapsed_s": self.elapsed,
            "rng": rng_state(),
            "train_config": self.cfg.to_dict(),
        }

    def save_snapshot(self) -> Path:
        """Numbered snapshot + checkpoint-latest (hard links to it) + old snapshots pruned. Rank 0 only."""
        run = self.run_dir
        snap = run.snapshot(self.cur_nimg)
        provenance = {"dataset": str(Path(self.cfg.data).resolve()), "dataset_images": self.dataset.num_images,
                      "kimg": self.cur_nimg / 1000, "trained_by": "sneakergan train",
                      **({"transfer_from": str(self.cfg.transfer_from)} if self.cfg.transfer_from else {})}
        if self.cfg.cond:  # so `generate --class NAME` works on any snapshot, not only on exports
            from ..labels import dataset_class_names

            names = dataset_class_names(self.cfg.data)
            if names:
                provenance["class_names"] = names
        save_checkpoint(snap, self.net_cfg, nets={"G": self.G, "D": self.D, "G_ema": self.G_ema},
                        optimizers={"G": self.opt_G, "D": self.opt_D}, state=self._state(), provenance=provenance)
        run.publish_latest(snap)
        run.prune(self.cfg.keep)
        return run.latest

    def save_grid(self) -> Path:
        """Sample grid of G_ema from fixed seeds 0..grid_size-1, numbered and as grid-latest.png."""
        from .grids import fakes_grid

        grid = fakes_grid(self.G_ema, self.cfg.grid_size, self.net_cfg.c_dim, self.net_cfg.invert, self.device)
        path = self.run_dir.grid(self.cur_nimg)
        self.run_dir.save_image(grid, path)
        self.run_dir.save_image(grid, self.out / "grid-latest.png")
        return path

    def _open_run_dir(self) -> RunDir:
        """Rank 0: create the run folder (or reopen it for a resume in place) and lock it."""
        if self.in_place:
            run = RunDir.open_existing(self.out)
            run.trim_log(self.cur_nimg)
        else:
            run = RunDir.create(self.out)
        if not (run.path / REALS).exists():
            from .grids import reals_grid

            run.save_image(reals_grid(self.dataset, self.cfg.grid_size), run.path / REALS)
        return run

    # -- run -----------------------------------------------------------------------------------------

    def run(self, stop_after_nimg: int | None = None) -> RunResult:
        """Train until cfg.kimg (or `stop_after_nimg` images more, for tests and benchmarks)."""
        cfg = self.cfg
        total_nimg = int(round(cfg.kimg * 1000))
        stop_nimg = total_nimg if stop_after_nimg is None else min(total_nimg, self.cur_nimg + stop_after_nimg)
        self.run_dir = self._open_run_dir() if self.is_main else RunDir(self.out)
        # Seed the per-process randomness (noise, z, augmentation) after building the networks.
        if self._saved_rng:
            set_rng_state(self._saved_rng)
        else:
            torch.manual_seed(cfg.seed * 1_000_003 + self.dist.rank * 7919 + self.cur_nimg + 1)
        data = self._loader()

        tick = Every.kimg(cfg.tick, self.cur_nimg)
        snap = Every.kimg(cfg.snap, self.cur_nimg)
        metrics = Every.kimg(cfg.metrics_every or cfg.snap, self.cur_nimg)
        stats = TickStats()
        last: dict[str, float] = {}
        checkpoint = None
        resumed_at = self.cur_nimg / 1000 if self.resumed else None
        tick_start = (self.cur_nimg, time.perf_counter())
        display = self.display
        try:
            if display is not None:
                display.start(self.cur_nimg, total_nimg)
            while self.cur_nimg < stop_nimg:
                stats.add(self._step(*next(data)))
                if display is not None:
                    display.step(self.cur_nimg)
                done = self.cur_nimg >= stop_nimg
                if not (tick.due(self.cur_nimg) or done):
                    continue
                # End of a tick: the statistics are read (one host sync), logged, then metrics and snapshots.
                last = stats.read()
                row = self._tick_row(last, tick_start)
                if resumed_at is not None:
                    row["resumed_at_kimg"], resumed_at = resumed_at, None
                if metrics.due(self.cur_nimg):
                    if self.is_main and (m := self.metrics(self.G_ema)):
                        row["metrics"] = m
                    metrics.advance(self.cur_nimg)
                if self.is_main:
                    self.run_dir.append_log(row)
                    if display is not None:
                        display.tick(row)
                    if self.on_tick is not None:
                        self.on_tick(row)
                if snap.due(self.cur_nimg) or done:
                    if self.is_main:
                        checkpoint = self.save_snapshot()
                        self.save_grid()
                    snap.advance(self.cur_nimg)
                tick.advance(self.cur_nimg)
                tick_start = (self.cur_nimg, time.perf_counter())
        except BaseException:
            if self.is_main and checkpoint is None and not self.in_place and not self.run_dir.snapshots():
                self.run_dir.discard()  # nothing to resume: leave no half-made run folder in the way
            raise
        finally:
            if display is not None:
                display.stop()
            self.dataset.close()
            if self.is_main:
                self.run_dir.close()
        return RunResult(self.out, self.cur_nimg, checkpoint, last)

    def _tick_row(self, stats: dict[str, float], tick_start: tuple[int, float]) -> dict[str, Any]:
        """The log line of a tick: progress, speed, augmentation and the tick's mean statistics."""
        dt = time.perf_counter() - tick_start[1]
        shown = self.cur_nimg - tick_start[0]
        self.elapsed += dt
        row: dict[str, Any] = {
            "kimg": round(self.cur_nimg / 1000, 3), "cur_nimg": self.cur_nimg, "time_s": round(self.elapsed, 2),
            "sec_per_kimg": round(dt / max(shown, 1) * 1000, 3), "kimg_per_s": round(shown / 1000 / max(dt, 1e-9), 5),
            "img_per_s": round(shown / max(dt, 1e-9), 2),
            "p": float(self.augment.p) if self.augment is not None else 0.0,
            **{k: round(v, 6) for k, v in stats.items()}}
        if self.ada is not None and "r_t" not in row and self.ada.last_rt is not None:
            row["r_t"] = round(float(self.ada.last_rt), 6)  # no p update this tick: the latest r_t
        return row


@dataclasses.dataclass
class Every:
    """An event every `nimg` images, at whole multiples of it (ticks, snapshots, metrics)."""

    nimg: int
    next: int

    @classmethod
    def kimg(cls, kimg: float, cur_nimg: int) -> "Every":
        nimg = max(int(round(kimg * 1000)), 1)
        return cls(nimg, (cur_nimg // nimg + 1) * nimg)

    def due(self, cur_nimg: int) -> bool:
        return cur_nimg >= self.next

    def advance(self, cur_nimg: int) -> None:
        self.next = (cur_nimg // self.nimg + 1) * self.nimg


def _transfer_nets(ckpt):
    """A source checkpoint for fine-tuning: needs D; G and G_ema stand in for each other when one is missing."""
    if "D" not in ckpt.nets:
        raise TrainError(f"{ckpt.path}: has no discriminator (an exported serving model?); fine-tuning needs a "
                         "training checkpoint or an imported reference snapshot with D")
    if "G" not in ckpt.nets and "G_ema" not in ckpt.nets:
        raise TrainError(f"{ckpt.path}: has no generator")
    if "G" not in ckpt.nets:
        ckpt.nets["G"] = copy.deepcopy(ckpt.nets["G_ema"])
    if "G_ema" not in ckpt.nets:
        ckpt.nets["G_ema"] = copy.deepcopy(ckpt.nets["G"])
    return ckpt


def train(cfg: TrainConfig, progress: bool = True, console: Any = None) -> RunResult:
    """Run a whole training (or fine-tuning) job from a resolved config."""
    return Trainer(cfg, progress=progress).run()
