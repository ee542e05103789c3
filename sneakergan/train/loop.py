"""The training loop: data -> G/D phases with lazy regularisation -> EMA -> ADA -> ticks, snapshots, resume.

One iteration (per process, batch_gpu = batch / world_size images):
  Gmain  G(z) -> augment -> D -> softplus(-logits); the fakes are kept for Dmain (saves a G forward).
  Greg   every pl_interval iterations: path-length penalty on batch / pl_batch_shrink (own Adam step).
  Dmain  reals and the kept fakes, augmented, through D in one batch.
  Dreg   every r1_interval iterations: R1 on reals (own Adam step).
  G_ema  lerp toward G with the half-life ema_kimg (ramped up early in training).
  ADA    every ada_interval iterations p moves toward the overfitting target.
Lazy regularisation: each reg phase is an extra optimiser step, so Adam's lr and betas are scaled by
interval / (interval + 1) as in StyleGAN2, appendix B.

Multi-process (torchrun): every rank holds full copies and averages gradients with one all-reduce per phase
(the reference's scheme; DistributedDataParallel cannot take the double backward of R1 / path length).
Rank 0 writes every file.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..modelfile import ModelFileError, load_checkpoint, model_paths, save_checkpoint
from ..nets import Discriminator, Generator, NetworkConfig
from .augment import AdaController, AugmentPipe
from .config import TrainConfig, network_config
from .dataset import DatasetError, ImageDataset, InfiniteSampler, to_float
from .loss import LossConfig, StyleGAN2Loss
from .mixed import MixedPrecision, enable_low_precision

LATEST = "checkpoint-latest"
LOG_NAME = "log.jsonl"


class TrainError(ValueError):
    """A training run that cannot start or continue; the message is one clear line."""


# -- distributed helpers ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Dist:
    """Where this process sits in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return t
        import torch.distributed as dist

        dev = torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
        out = t.to(dev).clone()
        dist.all_reduce(out)
        return out.to(t.device)

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        return self.all_reduce_sum(t) / self.world_size


def init_distributed(device_spec: str) -> tuple[Dist, torch.device]:
    """Read RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun), start the process group, pick the device."""
    d = Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))
    if device_spec == "auto":
        device = torch.device("cuda", d.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    else:
        device = torch.device(device_spec)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrainError("--device cuda requested but CUDA is not available (use cpu or auto)")
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", d.local_rank)
    if d.enabled:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return d, device


def _sync_grads(params: list[torch.nn.Parameter], dist_info: Dist) -> None:
    """Average gradients over processes with one flat all-reduce."""
    if not dist_info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    flat = dist_info.all_reduce_mean(flat)
    for g, new in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(new.view_as(g))


def _broadcast_module(module: torch.nn.Module, dist_info: Dist) -> None:
    if not dist_info.enabled:
        return
    import torch.distributed as dist

    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


# -- precision -------------------------------------------------------------------------------------------


def enable_bf16(modules: list[torch.nn.Module], device_type: str) -> None:
    """Run these modules under bf16 autocast and hand float32 back (see mixed.enable_low_precision)."""
    enable_low_precision(modules, device_type, torch.bfloat16)


# -- small utilities -------------------------------------------------------------------------------------


def nimg_tag(nimg: int) -> str:
    """File-name tag of a point in training: '000200' at 200 kimg, '000000-064' at 64 images."""
    return f"{nimg // 1000:06d}" + (f"-{nimg % 1000:03d}" if nimg % 1000 else "")


def _rng_state() -> dict[str, str]:
    state = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = base64.b64encode(torch.cuda.get_rng_state().numpy().tobytes()).decode()
    return state


def _set_rng_state(state: dict[str, str]) -> None:
    torch.set_rng_state(torch.from_numpy(np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.from_numpy(np.frombuffer(base64.b64decode(state["cuda"]), dtype=np.uint8).copy()))


def _make_adam(params: list[torch.nn.Parameter], lr: float, reg_interval: int | None) -> torch.optim.Adam:
    """Adam(0, 0.99), eps 1e-8, with StyleGAN2's lazy-regularisation correction of lr and betas."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval else 1.0
    kwargs: dict[str, Any] = dict(lr=lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, foreach=True, **kwargs)


def freeze_d_blocks(D: Discriminator, k: int) -> list[torch.nn.Parameter]:
    """Freeze-D (Mo et al. 2020): keep the first k blocks (highest resolution) fixed; returns trainable params."""
    blocks = D.blocks
    if k > len(blocks):
        raise TrainError(f"--freeze-d {k}: the discriminator has only {len(blocks)} blocks")
    frozen = {id(p) for b in blocks[:k] for p in b.parameters()}
    for b in blocks[:k]:
        b.requires_grad_(False)
    return [p for p in D.parameters() if id(p) not in frozen]


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; buffers (w_avg, noise) copied."""
    ema_p = [p for p in G_ema.parameters()]
    src_p = [p.detach() for p in G.parameters()]
    torch._foreach_lerp_(ema_p, src_p, 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def read_log(run_dir: str | Path) -> list[dict]:
    """All JSON lines of RUN/log.jsonl (skipping a torn last line after a kill)."""
    path = Path(run_dir) / LOG_NAME
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def find_checkpoint(path: str | Path) -> Path:
    """A loadable checkpoint from a run folder or a checkpoint path.

    A kill between the two renames of checkpoint-latest can leave its halves from different snapshots; then
    the newest numbered snapshot that loads is used instead.
    """
    p = Path(path)
    candidates: list[Path] = []
    if p.is_dir():
        candidates.append(p / LATEST)
        folder = p
    else:
        candidates.append(model_paths(p)[0].with_suffix(""))
        folder = p.parent
    candidates += sorted((s.with_suffix("") for s in folder.glob("snapshot-*.json")), reverse=True)
    errors = []
    for cand in candidates:
        st, js = model_paths(cand)
        if not js.exists():
            continue
        try:
            load_checkpoint(cand, nets=(), verify=True)
            return cand
        except ModelFileError as e:
            errors.append(str(e))
    if errors:
        raise TrainError(f"no loadable checkpoint in {folder}: {errors[0]}")
    raise TrainError(f"{path}: no checkpoint found (expected {LATEST}.safetensors/.json or a model file)")


# -- the loop --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunResult:
    """What a finished (or stopped) run leaves behind."""

    out: Path
    cur_nimg: int
    checkpoint: Path | None
    last_stats: dict[str, float]


class Trainer:
    """Builds everything from a TrainConfig and runs the loop; `run()` returns a RunResult."""

    def __init__(self, cfg: TrainConfig, progress: bool = True, console=None,
                 on_tick: Callable[[dict], None] | None = None) -> None:
        self.cfg = cfg
        self.progress = progress
        self.console = console
        self.on_tick = on_tick
        self.dist, self.device = init_distributed(cfg.device)
        if self.device.type == "cpu":
            torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        if cfg.batch % self.dist.world_size:
            raise TrainError(f"--batch {cfg.batch} must be divisible by the number of processes ({self.dist.world_size})")
        self.batch_gpu = cfg.batch // self.dist.world_size
        self.out = Path(cfg.out)
        self.is_main = self.dist.rank == 0
        self._setup()

    # -- setup ---------------------------------------------------------------------------------------

    def _setup(self) -> None:
        cfg = self.cfg
        try:
            self.dataset = ImageDataset(cfg.data, mirror=cfg.mirror, use_labels=cfg.cond)
        except DatasetError as e:
            raise TrainError(str(e)) from None
        ds = self.dataset
        if len(ds) < self.batch_gpu and self.is_main:
            self._print(f"note: {len(ds)} images, fewer than a batch ({self.batch_gpu}); images repeat within batches")

        resume_ckpt = None
        self.state: dict[str, Any] = {}
        if cfg.resume:
            path = find_checkpoint(cfg.resume)
            resume_ckpt = load_checkpoint(path, nets=("G", "D", "G_ema"), device=self.device)
            self.state = dict(resume_ckpt.state)
            net_cfg = resume_ckpt.config
        elif cfg.transfer_from:
            src = find_checkpoint(cfg.transfer_from) if Path(cfg.transfer_from).is_dir() else cfg.transfer_from
            resume_ckpt = self._load_transfer_source(src)
            net_cfg = resume_ckpt.config
            if cfg.cond and net_cfg.c_dim != ds.label_dim:
                raise TrainError(f"the source model takes {net_cfg.c_dim} labels, the dataset has {ds.label_dim}")
        else:
            try:
                net_cfg = network_config(cfg, ds.width, ds.height, ds.label_dim)
            except ValueError as e:
                raise TrainError(str(e)) from None
        if (net_cfg.img_width, net_cfg.img_height) != (ds.width, ds.height):
            what = "resume from" if cfg.resume else "fine-tune"
            raise TrainError(
                f"cannot {what} a {net_cfg.img_width}x{net_cfg.img_height} model on {ds.width}x{ds.height} images "
                f"({cfg.data}); prepare the data at {net_cfg.img_width}x{net_cfg.img_height}")
        if net_cfg.c_dim and net_cfg.c_dim != ds.label_dim:
            raise TrainError(f"the model takes {net_cfg.c_dim} label values, {cfg.data} has {ds.label_dim} (use --cond with a labelled dataset)")
        group = net_cfg.mbstd_group
        if group > 0 and self.batch_gpu % min(group, self.batch_gpu):
            raise TrainError(f"batch per process {self.batch_gpu} must be divisible by the minibatch-stddev group {group}")
        self.net_cfg: NetworkConfig = net_cfg

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        if resume_ckpt is not None:
            self.G = resume_ckpt.nets["G"].to(self.device)
            self.D = resume_ckpt.nets["D"].to(self.device)
            self.G_ema = resume_ckpt.nets["G_ema"].to(self.device)
        else:
            self.G = Generator(net_cfg).to(self.device)
            self.D = Discriminator(net_cfg).to(self.device)
            self.G_ema = copy.deepcopy(self.G)
        self.G.train().requires_grad_(False)
        self.D.train().requires_grad_(False)
        self.G_ema.eval().requires_grad_(False)
        for m in (self.G, self.D, self.G_ema):
            _broadcast_module(m, self.dist)
        self.g_params = list(self.G.parameters())
        self.d_params = freeze_d_blocks(self.D, cfg.freeze_d)

        # Precision: channels-last nets and per-phase autocast for bf16 (train/mixed.py); before the optimisers.
        try:
            self.mp = MixedPrecision.for_run(cfg.precision, self.device)
        except ValueError as e:
            raise TrainError(str(e)) from None
        self.mp.setup(self.G, self.D, self.G_ema)

        self.augment = None
        if cfg.aug != "none":
            self.augment = AugmentPipe(cfg.augpipe, p=cfg.p).to(self.device)
        self.ada = None
        if cfg.aug == "ada":
            self.ada = AdaController(self.augment, target=cfg.target, ada_kimg=cfg.ada_kimg, interval=cfg.ada_interval,
                                     reduce=self.dist.all_reduce_sum if self.dist.enabled else None)
        self.loss = StyleGAN2Loss(
            self.G, self.D, self.augment,
            LossConfig(r1_gamma=cfg.gamma, pl_weight=cfg.pl_weight, pl_decay=cfg.pl_decay,
                       pl_batch_shrink=cfg.pl_batch_shrink, style_mix=cfg.style_mix),
            reduce_mean=self.dist.all_reduce_mean if self.dist.enabled else None)
        self.g_reg = cfg.pl_interval if cfg.pl_weight > 0 else None
        self.d_reg = cfg.r1_interval if cfg.gamma > 0 else None
        self.opt_G = _make_adam(self.g_params, cfg.lr, self.g_reg)
        self.opt_D = _make_adam(self.d_params, cfg.lr, self.d_reg)

        self.cur_nimg = 0
        self.batch_idx = 0
        self.elapsed = 0.0
        if cfg.resume and resume_ckpt is not None:
            self._restore(resume_ckpt)

        # Labels for fakes are drawn from the dataset's label distribution.
        self.labels = None
        if self.net_cfg.c_dim:
            self.labels = torch.stack([ds.label(i) for i in range(ds.num_images)]).to(self.device)

    def _load_transfer_source(self, path: str | Path):
        try:
            meta_nets = load_checkpoint(path, nets=(), verify=True).meta.get("nets", [])
        except ModelFileError as e:
            raise TrainError(str(e)) from None
        if "D" not in meta_nets:
            raise TrainError(f"{path}: has no discriminator (an exported serving model?); fine-tuning needs a "
                             "training checkpoint or an imported reference snapshot with D")
        wanted = [n for n in ("G", "D", "G_ema") if n in meta_nets]
        ckpt = load_checkpoint(path, nets=wanted, device=self.device)
        if "G" not in ckpt.nets:
            ckpt.nets["G"] = copy.deepcopy(ckpt.nets["G_ema"])
        if "G_ema" not in ckpt.nets:
            ckpt.nets["G_ema"] = copy.deepcopy(ckpt.nets["G"])
        return ckpt

    def _restore(self, ckpt) -> None:
        st = ckpt.state
        try:
            ckpt.load_optimizer("G", self.opt_G)
            ckpt.load_optimizer("D", self.opt_D)
        except ModelFileError as e:
            raise TrainError(str(e)) from None
        # Give loaded moments their parameter's memory layout: the fused Adam kernel walks parameter and
        # moments side by side and silently mixes elements up when strides differ (a resume test caught it
        # with channels_last parameters).
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                for p in group["params"]:
                    for key, t in opt.state.get(p, {}).items():
                        if torch.is_tensor(t) and t.shape == p.shape and t.stride() != p.stride():
                            opt.state[p][key] = torch.empty_like(p).copy_(t)
        self.cur_nimg = int(st.get("cur_nimg", round(float(st.get("kimg", 0)) * 1000)))
        self.batch_idx = int(st.get("batch_idx", 0))
        self.elapsed = float(st.get("elapsed_s", 0.0))
        if self.augment is not None:
            self.augment.p.fill_(float(st.get("augment_p", self.cfg.p)))
        if self.ada is not None and "ada" in st:
            self.ada.load_state_dict({**st["ada"], "p": float(st.get("augment_p", 0.0))})
        if "pl_mean" in st:
            self.loss.pl_mean.fill_(float(st["pl_mean"]))
        self._saved_rng = st.get("rng") if self.dist.world_size == 1 else None

    def _print(self, msg: str) -> None:
        if not self.is_main:
            return
        if self.console is not None:
            self.console.print(msg, highlight=False)
        else:
            print(msg, flush=True)

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

    def _step(self, real_u8: torch.Tensor, real_c: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, dev = self.cfg, self.device
        n = real_u8.shape[0]
        real = to_float(real_u8.to(dev, non_blocking=True), invert=self.net_cfg.invert)
        real_c = real_c.to(dev) if self.net_cfg.c_dim else None
        stats: dict[str, torch.Tensor] = {}

        # Gmain (D frozen: its weight gradients are not needed here).
        self.G.requires_grad_(True)
        z = torch.randn(n, self.net_cfg.z_dim, device=dev)
        c = self._fake_labels(n)
        with self.mp.phase():
            loss, fake, s = self.loss.g_main(z, c)
        loss.backward()
        stats.update(s)
        self._opt_step(self.opt_G, self.g_params)

        # Greg: path length, its own step every pl_interval iterations.
        if self.g_reg and self.batch_idx % self.g_reg == 0:
            z = torch.randn(n, self.net_cfg.z_dim, device=dev)
            with self.mp.phase():
                loss, s = self.loss.g_pl(z, self._fake_labels(n), gain=self.g_reg)
            loss.backward()
            stats.update(s)
            self._opt_step(self.opt_G, self.g_params)
        self.G.requires_grad_(False)

        # Dmain on reals and the fakes Gmain just made.
        for p in self.d_params:
            p.requires_grad_(True)
        with self.mp.phase():
            loss, real_logits, s = self.loss.d_main(real, real_c, fake, c)
        loss.backward()
        stats.update(s)
        self._opt_step(self.opt_D, self.d_params)
        if self.ada is not None:
            self.ada.accumulate(real_logits)

        # Dreg: R1, its own step every r1_interval iterations.
        if self.d_reg and self.batch_idx % self.d_reg == 0:
            with self.mp.phase():
                loss, s = self.loss.d_r1(real, real_c, gain=self.d_reg)
            loss.backward()
            stats.update(s)
            self._opt_step(self.opt_D, self.d_params)
        for p in self.d_params:
            p.requires_grad_(False)

        # G_ema with the reference's half-life and ramp-up.
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup:
            ema_nimg = min(ema_nimg, self.cur_nimg * cfg.ema_rampup)
        beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
        update_ema(self.G_ema, self.G, beta)

        self.cur_nimg += cfg.batch
        self.batch_idx += 1
        if self.ada is not None:
            rt = self.ada.update(cfg.batch)
            if rt is not None:
                stats["r_t"] = torch.tensor(rt)
        return stats

    def _opt_step(self, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> None:
        _sync_grads(params, self.dist)
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
            "rng": _rng_state(),
            "train_config": self.cfg.to_dict(),
        }

    def save_snapshot(self) -> Path:
        """Numbered snapshot + checkpoint-latest (hard links to it) + old snapshots pruned. Rank 0 only."""
        self.out.mkdir(parents=True, exist_ok=True)
        tag = nimg_tag(self.cur_nimg)
        snap = self.out / f"snapshot-{tag}"
        provenance = {"dataset": str(Path(self.cfg.data).resolve()), "dataset_images": self.dataset.num_images,
                      "kimg": self.cur_nimg / 1000, "trained_by": "sneakergan train",
                      **({"transfer_from": str(self.cfg.transfer_from)} if self.cfg.transfer_from else {})}
        save_checkpoint(snap, self.net_cfg, nets={"G": self.G, "D": self.D, "G_ema": self.G_ema},
                        optimizers={"G": self.opt_G, "D": self.opt_D}, state=self._state(), provenance=provenance)
        # Publish as latest: link (no second write of the weights), rename into place, weights first.
        for src, dst in zip(model_paths(snap), model_paths(self.out / LATEST)):
            tmp = dst.with_name(f".{dst.name}.tmp")
            if tmp.exists():
                tmp.unlink()
            try:
                os.link(src, tmp)
            except OSError:
                import shutil

                shutil.copy2(src, tmp)
            os.replace(tmp, dst)
        snaps = sorted(self.out.glob("snapshot-*.json"))
        for old in snaps[: max(len(snaps) - self.cfg.keep, 0)]:
            for f in model_paths(old):
                f.unlink(missing_ok=True)
        return self.out / LATEST

    def save_grid(self) -> Path:
        """Sample grid of G_ema from fixed seeds 0..grid_size-1 (same z at every snapshot)."""
        from PIL import Image

        from ..generate import images_to_uint8, make_grid, seeds_to_z

        n = self.cfg.grid_size
        z = seeds_to_z(range(n), self.G_ema.z_dim).to(self.device)
        c = None
        if self.net_cfg.c_dim:
            c = torch.zeros(n, self.net_cfg.c_dim, device=self.device)
            c[torch.arange(n), torch.arange(n) % self.net_cfg.c_dim] = 1
        imgs = []
        with torch.inference_mode():
            for i in range(0, n, 16):
                ws = self.G_ema.mapping(z[i : i + 16], None if c is None else c[i : i + 16])
                imgs.append(self.G_ema.synthesis(ws, noise_mode="const").float().cpu())
        arrs = list(images_to_uint8(torch.cat(imgs), invert=self.net_cfg.invert))
        # Columns: a divisor of n near its square root (32 -> 8 x 4), so the grid has no ragged last row.
        root = math.sqrt(n)
        cols = next((d for d in range(math.ceil(root), int(2 * root) + 1) if n % d == 0), math.ceil(root))
        grid: Image.Image = make_grid(arrs, cols=cols)
        path = self.out / f"grid-{nimg_tag(self.cur_nimg)}.png"
        grid.save(path)
        tmp = self.out / ".grid-latest.png.tmp"
        grid.save(tmp, format="PNG")
        os.replace(tmp, self.out / "grid-latest.png")
        return path

    def _log(self, row: dict) -> None:
        with open(self.out / LOG_NAME, "a") as f:
            f.write(json.dumps(row) + "\n")

    def _trim_log(self) -> None:
        """After a resume, drop log lines written past the checkpoint (they will be produced again)."""
        rows = read_log(self.out)
        keep = [r for r in rows if r.get("cur_nimg", 0) <= self.cur_nimg]
        if len(keep) != len(rows):
            tmp = self.out / f".{LOG_NAME}.tmp"
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
            os.replace(tmp, self.out / LOG_NAME)

    def _metrics(self) -> dict[str, float]:
        if not self.cfg.metrics:
            return {}
        try:
            from ..metrics import compute_metrics  # noqa: PLC0415 - optional stage
        except ImportError:
            self._print("warning: sneakergan.metrics is not available; skipping --metrics")
            self.cfg.metrics = []
            return {}
        try:
            return compute_metrics(self.G_ema, self.cfg.data, list(self.cfg.metrics), num=self.cfg.metrics_num,
                                   extractor=self.cfg.metrics_extractor, device=self.device,
                                   features=self.cfg.metrics_features)
        except Exception as e:  # noqa: BLE001 - a metric failure must not kill a long run
            self._print(f"warning: metrics failed ({e}); training continues without them")
            self.cfg.metrics = []
            return {}

    # -- run -----------------------------------------------------------------------------------------

    def run(self, stop_after_nimg: int | None = None) -> RunResult:
        """Train until cfg.kimg (or `stop_after_nimg` images more, for tests and benchmarks)."""
        cfg = self.cfg
        total_nimg = int(round(cfg.kimg * 1000))
        stop_nimg = total_nimg if stop_after_nimg is None else min(total_nimg, self.cur_nimg + stop_after_nimg)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if cfg.resume:
                self._trim_log()
            else:
                (self.out / LOG_NAME).unlink(missing_ok=True)
        # Seed the per-process randomness (noise, z, augmentation) after building the networks.
        saved_rng = getattr(self, "_saved_rng", None)
        if saved_rng:
            _set_rng_state(saved_rng)
        else:
            torch.manual_seed(cfg.seed * 1_000_003 + self.dist.rank * 7919 + self.cur_nimg + 1)
        data = self._loader()

        tick_nimg = max(int(cfg.tick * 1000), 1)
        snap_nimg = max(int(cfg.snap * 1000), 1)
        metrics_nimg = int(cfg.metrics_every * 1000) if cfg.metrics_every else snap_nimg
        next_tick = (self.cur_nimg // tick_nimg + 1) * tick_nimg
        next_snap = (self.cur_nimg // snap_nimg + 1) * snap_nimg
        next_metrics = (self.cur_nimg // metrics_nimg + 1) * metrics_nimg
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        last_stats: dict[str, float] = {}
        tick_start_nimg, tick_start = self.cur_nimg, time.perf_counter()
        checkpoint = None

        bar = self._progress_bar(total_nimg) if (self.progress and self.is_main) else None
        try:
            if bar is not None:
                bar[0].start()
            while self.cur_nimg < stop_nimg:
                real, real_c = next(data)
                stats = self._step(real, real_c)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                    counts[k] = counts.get(k, 0) + 1
                if bar is not None:
                    self._update_bar(bar, stats)
                done = self.cur_nimg >= stop_nimg
                if self.cur_nimg >= next_tick or done:
                    now = time.perf_counter()
                    dt = now - tick_start
                    self.elapsed += dt
                    shown = self.cur_nimg - tick_start_nimg
                    last_stats = {k: sums[k] / counts[k] for k in sums}
                    row = {"kimg": round(self.cur_nimg / 1000, 3), "cur_nimg": self.cur_nimg,
                           "time_s": round(self.elapsed, 2),
                           "sec_per_kimg": round(dt / max(shown, 1) * 1000, 3),
                           "kimg_per_s": round(shown / 1000 / max(dt, 1e-9), 5),
                           "img_per_s": round(shown / max(dt, 1e-9), 2),
                           "p": float(self.augment.p) if self.augment is not None else 0.0,
                           **{k: round(v, 6) for k, v in last_stats.items()}}
                    if self.ada is not None and "r_t" not in row and self.ada.last_rt is not None:
                        row["r_t"] = round(self.ada.last_rt, 6)  # no p update this tick: the latest r_t
                    sums, counts = {}, {}
                    if self.cur_nimg >= next_metrics or done:
                        m = self._metrics() if self.cur_nimg >= next_metrics else {}
                        if m:
                            row["metrics"] = m
                        next_metrics = (self.cur_nimg // metrics_nimg + 1) * metrics_nimg
                    if self.is_main:
                        self._log(row)
                        if self.on_tick is not None:
                            self.on_tick(row)
                    if self.cur_nimg >= next_snap or done:
                        if self.is_main:
                            checkpoint = self.save_snapshot()
                            self.save_grid()
                        next_snap = (self.cur_nimg // snap_nimg + 1) * snap_nimg
                    next_tick = (self.cur_nimg // tick_nimg + 1) * tick_nimg
                    tick_start_nimg, tick_start = self.cur_nimg, time.perf_counter()
        finally:
            if bar is not None:
                bar[0].stop()
            self.dataset.close()
        return RunResult(self.out, self.cur_nimg, checkpoint, last_stats)

    def _progress_bar(self, total_nimg: int):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from ..console import err_console

        progress = Progress(
            TextColumn("[bold]train"), BarColumn(),
            TextColumn("{task.fields[kimg]} kimg"), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("p {task.fields[p]}  G {task.fields[g]}  D {task.fields[d]}"),
            console=err_console, transient=False, refresh_per_second=2,
        )
        task = progress.add_task("train", total=total_nimg, completed=self.cur_nimg, kimg="", rate="", p="", g="", d="")
        return progress, task, {"t": time.perf_counter(), "nimg": self.cur_nimg}

    def _update_bar(self, bar, stats: dict[str, torch.Tensor]) -> None:
        progress, task, last = bar
        now = time.perf_counter()
        fields: dict[str, str] = {"kimg": f"{self.cur_nimg / 1000:.2f}/{self.cfg.kimg:g}"}
        if now - last["t"] > 2:
            rate = (self.cur_nimg - last["nimg"]) / (now - last["t"])
            fields["rate"] = f"{rate * 3.6:.1f} kimg/h ({1000 / max(rate, 1e-9):.1f} s/kimg)"
            last["t"], last["nimg"] = now, self.cur_nimg
        fields["p"] = f"{float(self.augment.p):.3f}" if self.augment is not None else "-"
        if "loss_G" in stats:
            fields["g"] = f"{float(stats['loss_G']):.3f}"
        if "loss_D" in stats:
            fields["d"] = f"{float(stats['loss_D']):.3f}"
        progress.update(task, completed=self.cur_nimg, **fields)


def train(cfg: TrainConfig, progress: bool = True, console=None) -> RunResult:
    """Run a whole training (or fine-tuning) job from a resolved config."""
    return Trainer(cfg, progress=progress, console=console).run()
