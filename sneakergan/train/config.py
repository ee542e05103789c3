"""Training configuration: one dataclass holding every knob, resolved from preset defaults, a resumed run and flags.

Precedence (lowest to highest): `TrainConfig` field defaults -> the preset's `TrainingDefaults` (REFERENCES.md's
table) -> the config stored in a checkpoint being resumed -> flags given on the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..nets import NetworkConfig, get_preset


@dataclass
class TrainConfig:
    """Everything one training run needs; stored whole in every checkpoint (state.train_config)."""

    data: str = ""
    out: str = ""
    preset: str = "tiny"
    kimg: float = 25000.0  # stop after this many thousand real images shown to D (the reference's default)
    # Optimisation (REFERENCES.md; per-preset defaults fill these in).
    batch: int = 32  # global batch, split evenly over processes
    lr: float = 0.002
    gamma: float = 10.0  # R1 weight
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mix: float = 0.9
    ema_kimg: float = 10.0
    ema_rampup: float | None = None
    # Network overrides (None = the preset's / the dataset's value).
    mbstd_group: int | None = None
    channel_base: int | None = None
    channel_max: int | None = None
    mapping_layers: int | None = None
    aspect: tuple[int, int] | None = None  # width:height; must match the data (inferred when None)
    invert: bool = False
    cond: bool = False
    # Data.
    mirror: bool = False
    workers: int = 1
    # Augmentation.
    aug: str = "ada"  # ada | fixed | none
    target: float = 0.6
    p: float = 0.0  # initial p (ada) or the constant p (fixed)
    augpipe: str = "bgc"
    ada_kimg: float = 500.0
    ada_interval: int = 4
    # Transfer learning.
    freeze_d: int = 0
    transfer_from: str | None = None
    # Bookkeeping.
    seed: int = 0
    snap: float = 50.0  # kimg between checkpoints + grids
    tick: float = 4.0  # kimg between log lines
    keep: int = 3  # numbered snapshots kept (checkpoint-latest always)
    grid_size: int = 32  # images in the sample grid (fixed seeds 0..n-1)
    metrics: list[str] = field(default_factory=list)
    metrics_every: float | None = None  # kimg; None = every snapshot
    metrics_num: int | None = None  # generated/real images per metric (None: the metric's own, e.g. 50k)
    metrics_extractor: str = "inception"  # or "random-tiny": runs anywhere, not comparable to published numbers
    metrics_features: str | None = None  # local Inception weights file (else $SNEAKERGAN_INCEPTION)
    threads: int | None = None  # CPU threads (None = all cores)
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (CUDA): see sneakergan/precision.py and train/mixed.py
    resume: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.aspect is not None:
            d["aspect"] = list(self.aspect)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if d.get("aspect") is not None:
            d["aspect"] = tuple(d["aspect"])
        return cls(**d)


AUG_MODES = ("ada", "fixed", "none")


def preset_training(name: str) -> dict[str, Any]:
    """The training defaults of a preset as TrainConfig fields."""
    t = get_preset(name).training
    return {"batch": t.batch, "lr": t.lr, "gamma": t.gamma, "ema_kimg": t.ema_kimg, "ema_rampup": t.ema_rampup,
            "pl_weight": t.pl_weight, "style_mix": t.style_mix}


def auto_training(resolution: int, gpus: int = 1) -> dict[str, Any]:
    """The reference's 'auto' config for a resolution (used for models imported without training settings)."""
    batch = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    return {"batch": batch, "lr": 0.002 if resolution >= 1024 else 0.0025, "gamma": 0.0002 * resolution**2 / batch,
            "ema_kimg": batch * 10 / 32, "ema_rampup": 0.05, "mbstd_group": min(batch // gpus, 4)}


def resolve_config(flags: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Merge explicit flags (None values ignored) over a base: a resumed run's config or the preset's defaults."""
    flags = {k: v for k, v in flags.items() if v is not None}
    if base is None:
        name = flags.get("preset", TrainConfig.preset)
        base = dataclasses.replace(TrainConfig(preset=name), **preset_training(name))
    cfg = dataclasses.replace(base, **flags)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Raise ValueError with one clear line for settings that cannot work."""
    if cfg.aug not in AUG_MODES:
        raise ValueError(f"--aug must be one of {', '.join(AUG_MODES)}, got {cfg.aug!r}")
    from .augment import AUGPIPES

    if cfg.augpipe not in AUGPIPES:
        raise ValueError(f"--augpipe must be one of {', '.join(AUGPIPES)}, got {cfg.augpipe!r}")
    if cfg.batch < 1:
        raise ValueError(f"--batch must be positive, got {cfg.batch}")
    if cfg.kimg <= 0:
        raise ValueError(f"--kimg must be positive, got {cfg.kimg}")
    if cfg.snap <= 0 or cfg.tick <= 0:
        raise ValueError("--snap and --tick must be positive")
    if not 0 <= cfg.p <= 1:
        raise ValueError(f"--p must be in [0, 1], got {cfg.p}")
    if cfg.freeze_d < 0:
        raise ValueError(f"--freeze-d must be >= 0, got {cfg.freeze_d}")
    for name in ("gamma", "pl_weight", "lr", "ema_kimg"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
    from ..precision import PRECISIONS

    if cfg.precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    if not 0 <= cfg.style_mix <= 1:
        raise ValueError(f"--style-mix must be in [0, 1], got {cfg.style_mix}")


def network_config(cfg: TrainConfig, width: int, height: int, label_dim: int) -> NetworkConfig:
    """The preset's network, shaped for the data (resolution, aspect, labels) and the run's overrides."""
    from math import gcd

    g = gcd(width, height)
    data_aspect = (width // g, height // g)
    if cfg.aspect is not None:
        a = (cfg.aspect[0] // gcd(*cfg.aspect), cfg.aspect[1] // gcd(*cfg.aspect))
        if a != data_aspect:
            raise ValueError(f"--aspect {cfg.aspect[0]}:{cfg.aspect[1]} does not match the data ({width}x{height})")
    net = get_preset(cfg.preset).network
    overrides: dict[str, Any] = {"resolution": max(width, height), "aspect": data_aspect,
                                 "c_dim": label_dim if cfg.cond else 0, "invert": cfg.invert}
    for name in ("mbstd_group", "channel_base", "channel_max", "mapping_layers"):
        if getattr(cfg, name) is not None:
            overrides[name] = getattr(cfg, name)
    return dataclasses.replace(net, **overrides)
