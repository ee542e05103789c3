"""Training configuration: one frozen dataclass whose fields carry their help text and bounds.

Every knob is written once, here: `sneakergan train` and `sneakergan finetune` derive their options from these
fields (train/options.py), and `check_fields` validates any config against the same bounds. Adding a knob is one
field.

Precedence (lowest to highest): field defaults -> the preset's `TrainingDefaults` (REFERENCES.md's table) -> the
config stored in a checkpoint being resumed -> flags given on the command line.

This module imports nothing heavy (no torch): the CLI builds its options from it at start-up.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError

TRAIN, FINETUNE = "train", "finetune"
BOTH = (TRAIN, FINETUNE)
AUG_MODES = ("ada", "fixed", "none")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")  # sneakergan.precision.PRECISIONS, without importing torch
EXTRACTOR_CHOICES = ("inception", "random-tiny")
# The fields a preset's TrainingDefaults fill in (nets/config.py; named here so this module needs no torch).
PRESET_FIELDS = ("batch", "lr", "gamma", "ema_kimg", "ema_rampup", "pl_weight", "style_mix")


class ConfigError(UserError):
    """A training setting that cannot work; the message is one line naming the flag."""


@dataclass(frozen=True)
class Knob:
    """How a TrainConfig field appears on the command line and which values it accepts."""

    help: str
    flag: str | None = None  # default: --field-name
    commands: tuple[str, ...] = BOTH  # which commands offer it
    ge: float | None = None  # inclusive lower bound
    gt: float | None = None  # exclusive lower bound
    le: float | None = None  # inclusive upper bound
    choices: tuple[str, ...] | None = None
    required: tuple[str, ...] = ()  # commands in which it must be given
    kind: str = ""  # "path" | "aspect" | "list": how the command line spells it

    def option(self, name: str) -> str:
        return self.flag or "--" + name.replace("_", "-")


def knob(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with its command-line description in the metadata."""
    meta = {"knob": Knob(help=help, **kw)}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable default: use a tuple")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; stored whole in every checkpoint (state.train_config).

    Frozen: a run never changes its own settings behind the user's back (a failing metric is switched off for the
    rest of that process only, and a resume brings it back).
    """

    data: str = knob("", "Dataset: a folder of images or a StyleGAN2-ADA zip.", kind="path", required=(FINETUNE,))
    out: str = knob("", "Run folder to create; refused if it holds anything (continue a run with --resume).",
                    kind="path")
    preset: str = knob("tiny", "Network + training defaults: tiny, demo64, small, paper256, ... (`sneakergan presets`).",
                       commands=(TRAIN,))
    resolution: int | None = knob(None, "Scale the preset's network to this resolution (the data's longer side); "
                                        "default: the preset's, which must match the data.", commands=(TRAIN,), ge=16)
    kimg: float = knob(25000.0, "Train until this many thousand real images were shown (fine-tuning counts from 0).",
                       gt=0, required=(FINETUNE,))
    # Optimisation (REFERENCES.md; the preset's defaults fill these in).
    batch: int = knob(32, "Global batch size, split evenly over processes.", ge=1)
    lr: float = knob(0.002, "Adam learning rate (G and D).", gt=0)
    gamma: float = knob(10.0, "R1 regularisation weight (0 = off).", ge=0)
    r1_interval: int = knob(16, "Lazy R1: D iterations between R1 steps.", ge=1)
    pl_weight: float = knob(2.0, "Path-length regularisation weight (0 = off).", ge=0)
    pl_interval: int = knob(4, "Lazy path length: G iterations between path-length steps.", ge=1)
    pl_decay: float = knob(0.01, "Decay of the path-length running mean.", ge=0, le=1)
    pl_batch_shrink: int = knob(2, "Path-length batch = batch / this.", ge=1)
    style_mix: float = knob(0.9, "Style-mixing probability (0 = off).", ge=0, le=1)
    diversity: float = knob(0.0, "Diversity hinge weight: G is pushed while its images are less varied (colour, "
                                 "outline) than the batch's reals (0 = off, the reference's loss).", ge=0)
    mmd: float = knob(0.0, "Kernel MMD weight: G also matches the distribution of the batch's reals on coarse images "
                           "and outlines, a mode-covering term (0 = off, the reference's loss).", ge=0)
    mmd_bank: int = knob(0, "MMD memory: recent fakes and reals (per process) the MMD also compares against, so G is "
                            "repelled from what it drew lately, not only within one batch (0 = the batch only).", ge=0)
    cover: float = knob(0.0, "Nearest-sample pull weight: each real of the batch draws the fake nearest to it on coarse "
                             "images and outlines, so no part of the data is left without samples (0 = off).", ge=0)
    spread: float = knob(0.0, "Neighbour-spread weight: fakes closer to their nearest recent fakes than reals are to "
                              "their nearest reals are pushed apart (a remedy for clumped samples; 0 = off).", ge=0)
    spread_axes: int = knob(0, "Neighbour-spread space: the data's top K principal axes of the coarse images, so "
                               "only variety along the data's own directions counts as spread (0 = the coarse "
                               "pixels).", ge=0)
    cover_axes: int = knob(0, "Nearest-sample pull's space: the data's top K principal axes of the coarse images, "
                              "where only the reals no recent fake covers (none within the real's 5th-nearest-real "
                              "distance, as the coverage metric asks) pull (0 = coarse images and outlines, every "
                              "real pulls).", ge=0)
    ema_kimg: float = knob(10.0, "G_ema half-life in kimg.", flag="--ema", ge=0)
    ema_rampup: float | None = knob(None, "G_ema ramp-up: half-life at most this x the images shown (none = off).",
                                    ge=0)
    # Network overrides (None = the preset's / the dataset's value); fine-tuning keeps the source's network.
    mbstd_group: int | None = knob(None, "Minibatch-stddev group size.", commands=(TRAIN,), ge=0)
    channel_base: int | None = knob(None, "Feature maps: channel_base (fmaps x 32768; see also --fmaps).",
                                    commands=(TRAIN,), ge=1)
    channel_max: int | None = knob(None, "Most feature maps in any layer.", commands=(TRAIN,), ge=1)
    mapping_layers: int | None = knob(None, "Mapping-network layers.", commands=(TRAIN,), ge=1)
    aspect: tuple[int, int] | None = knob(None, "WIDTH:HEIGHT (e.g. 3:4); must match the data (default: inferred).",
                                          commands=(TRAIN,), kind="aspect")
    invert: bool = knob(False, "Train on inverted colours (undone at generation).", commands=(TRAIN,))
    cond: bool = knob(False, "Conditional on the dataset's labels.")
    # Data.
    mirror: bool = knob(False, "Add x-flipped copies of the data.")
    workers: int = knob(1, "Data-loading processes (0 = in the training process).", ge=0)
    # Augmentation.
    aug: str = knob("ada", "Augmentation: ada (adaptive p), fixed (--p), none.", choices=AUG_MODES)
    target: float = knob(0.6, "ADA target for r_t = E(sign(D(real))).", ge=0, le=1)
    p: float = knob(0.0, "Initial (ada) or constant (fixed) augmentation probability.", ge=0, le=1)
    augpipe: str = knob("bgc", "Augmentations: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc "
                               "(bg keeps colourways).")
    ada_kimg: float = knob(500.0, "kimg for p to move by 1 (500; 100 for fine-tuning).", gt=0)
    ada_interval: int = knob(4, "Iterations between p updates.", ge=1)
    # Transfer learning.
    freeze_d: int = knob(0, "Freeze the first K discriminator blocks (Freeze-D).", ge=0)
    transfer_from: str | None = knob(None, "Trained checkpoint (or run folder, or imported reference model) to start "
                                           "from.", flag="--from", commands=(FINETUNE,), required=(FINETUNE,),
                                     kind="path")
    # Bookkeeping.
    seed: int = knob(0, "Random seed (weights, data order).", ge=0)
    tick: float = knob(4.0, "kimg between log lines (one line per tick).", gt=0)
    snap: float = knob(40.0, "kimg between checkpoints + sample grids (a multiple of --tick).", gt=0)
    keep: int = knob(3, "Numbered snapshots kept (checkpoint-latest always).", ge=1)
    grid_size: int = knob(32, "Images in the sample grid (fixed seeds 0..n-1).", ge=1, le=1024)
    metrics: tuple[str, ...] = knob((), "Metrics during training, e.g. fid50k_full (repeatable or comma-separated).",
                                    kind="list")
    metrics_every: float | None = knob(None, "kimg between metric evaluations (a multiple of --tick; default --snap).",
                                       gt=0)
    metrics_num: int | None = knob(None, "Images per metric (default: the metric's own count, e.g. 50k).", ge=2)
    metrics_extractor: str = knob("inception", "Metric features: inception (comparable numbers) or random-tiny "
                                               "(offline checks).", choices=EXTRACTOR_CHOICES)
    metrics_features: str | None = knob(None, "Local Inception weights file (default $SNEAKERGAN_INCEPTION).",
                                        kind="path")
    # The machine.
    threads: int | None = knob(None, "CPU threads (default: all cores).", ge=1)
    device: str = knob("auto", "auto, cpu, cuda or cuda:N.")
    precision: str = knob("auto", "auto: bf16 where the hardware has native bf16, else fp32 (auto|fp32|bf16|fp16).",
                          choices=PRECISION_CHOICES)
    compile: bool = knob(False, "torch.compile the step's networks where it helps.")
    resume: str | None = knob(None, "Run folder or checkpoint to continue exactly (default --out: that folder).",
                              kind="path")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (tuples as lists)."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of to_dict; unknown keys (from other versions) are ignored."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        kw = {k: _coerce(known[k], v) for k, v in d.items() if k in known}
        return cls(**kw)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (values coerced as from_dict does)."""
        known = {f.name: f for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{k: _coerce(known[k], v) for k, v in changes.items()})


def _coerce(f: dataclasses.Field, v: Any) -> Any:
    if v is None:
        return None
    if f.name == "aspect":
        return tuple(int(x) for x in v)
    if f.name == "metrics":
        return tuple(str(x) for x in ([v] if isinstance(v, str) else v))
    return v


def knobs(command: str | None = None) -> list[tuple[dataclasses.Field, Knob]]:
    """The fields with their Knob, in declaration order (only those a command offers, if given)."""
    out = []
    for f in dataclasses.fields(TrainConfig):
        k = f.metadata["knob"]
        if command is None or command in k.commands:
            out.append((f, k))
    return out


def preset_training(name: str) -> dict[str, Any]:
    """The training defaults of a preset as TrainConfig fields."""
    from ..nets import get_preset

    try:
        t = get_preset(name).training
    except ValueError as e:
        raise ConfigError(f"--preset: {e}") from None
    return {name: getattr(t, name) for name in PRESET_FIELDS}


def auto_training(resolution: int, gpus: int = 1) -> dict[str, Any]:
    """The reference's 'auto' config for a resolution (used for models imported without training settings)."""
    batch = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    return {"batch": batch, "lr": 0.002 if resolution >= 1024 else 0.0025, "gamma": 0.0002 * resolution**2 / batch,
            "ema_kimg": batch * 10 / 32, "ema_rampup": 0.05, "mbstd_group": min(batch // gpus, 4)}


def resolve_config(flags: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Merge explicit flags (None values ignored) over a base: a resumed run's config or the preset's defaults."""
    flags = {k: v for k, v in flags.items() if v is not None}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(flags) - known)
    if unknown:
        raise ConfigError(f"unknown training setting(s): {', '.join(unknown)}")
    if base is None:
        name = flags.get("preset", TrainConfig.preset)
        base = TrainConfig(preset=name).replace(**preset_training(name))
    cfg = base.replace(**flags)
    check_fields(cfg)
    return cfg


def check_fields(cfg: TrainConfig) -> None:
    """Each field against its own bounds and choices, then the rules between fields; one-line ConfigError."""
    for f, k in knobs():
        v = getattr(cfg, f.name)
        if v is None or isinstance(v, (bool, tuple, str)) and k.choices is None:
            continue
        opt = k.option(f.name)
        if k.choices is not None and v not in k.choices:
            raise ConfigError(f"{opt} must be one of {', '.join(k.choices)}, got {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{opt} must be a finite number, got {v}")
            if k.ge is not None and v < k.ge:
                raise ConfigError(f"{opt} must be >= {k.ge:g}, got {v:g}")
            if k.gt is not None and v <= k.gt:
                raise ConfigError(f"{opt} must be > {k.gt:g}, got {v:g}")
            if k.le is not None and v > k.le:
                raise ConfigError(f"{opt} must be <= {k.le:g}, got {v:g}")
    from .augment import AUGPIPES  # lazy: augment imports torch

    if cfg.augpipe not in AUGPIPES:
        raise ConfigError(f"--augpipe must be one of {', '.join(AUGPIPES)}, got {cfg.augpipe!r}")
    if cfg.aspect is not None and (len(cfg.aspect) != 2 or min(cfg.aspect) <= 0):
        raise ConfigError(f"--aspect must be WIDTH:HEIGHT with positive numbers, got {cfg.aspect}")
    # Snapshots and metrics happen at tick boundaries; an interval that is not a multiple of the tick would be
    # stretched to the next tick without a word (a --snap 0.25 under --tick 4 snapshotted every 4 kimg).
    for name, value in (("--snap", cfg.snap), ("--metrics-every", cfg.metrics_every)):
        if value is not None and not _is_multiple(value, cfg.tick):
            raise ConfigError(f"{name} {value:g} must be a multiple of --tick {cfg.tick:g} (snapshots and metrics "
                              f"happen at the end of a tick)")


def _is_multiple(value: float, tick: float) -> bool:
    """value = n * tick for a whole n >= 1, in images (both are kimg with up to three decimals)."""
    v, t = round(value * 1000), round(tick * 1000)
    return t > 0 and v >= t and v % t == 0


def network_config(cfg: TrainConfig, width: int, height: int, label_dim: int):
    """The preset's network, shaped for the data (resolution, aspect, labels) and the run's overrides.

    The preset's resolution must match the data unless --resolution says otherwise: a 32 px preset silently
    becoming a 64 px network (four times the compute, other capacity) is not what `--preset tiny` asked for.
    """
    from math import gcd

    from ..nets import get_preset

    g = gcd(width, height)
    data_aspect = (width // g, height // g)
    if cfg.aspect is not None:
        a = (cfg.aspect[0] // gcd(*cfg.aspect), cfg.aspect[1] // gcd(*cfg.aspect))
        if a != data_aspect:
            raise ConfigError(f"--aspect {cfg.aspect[0]}:{cfg.aspect[1]} does not match the data ({width}x{height})")
    try:
        net = get_preset(cfg.preset).network
    except ValueError as e:
        raise ConfigError(f"--preset: {e}") from None
    data_res = max(width, height)
    res = cfg.resolution or net.resolution
    if res != data_res:
        from ..nets import PRESETS

        fits = [n for n, p in PRESETS.items() if p.network.resolution == data_res]
        what = f"--resolution {cfg.resolution}" if cfg.resolution else f"--preset {cfg.preset} is {res} px, but"
        raise ConfigError(
            f"{what} the data is {width}x{height} ({data_res} px): use "
            + (f"--preset {' or '.join(fits)}, " if fits else "")
            + f"prepare the data at {res} px, or scale the preset with --resolution {data_res}")
    overrides: dict[str, Any] = {"resolution": data_res, "aspect": data_aspect,
                                 "c_dim": label_dim if cfg.cond else 0, "invert": cfg.invert}
    for name in ("mbstd_group", "channel_base", "channel_max", "mapping_layers"):
        if getattr(cfg, name) is not None:
            overrides[name] = getattr(cfg, name)
    try:
        return dataclasses.replace(net, **overrides)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def validate(cfg: TrainConfig) -> None:
    """Backward-compatible name for check_fields."""
    check_fields(cfg)
