"""Network configuration and named presets.

One dataclass fully rebuilds a generator/discriminator pair; it is what model files store as JSON. Presets
follow the reference configurations (channel_base = fmaps x 32768, channels at resolution r =
min(channel_base / r, channel_max)) so `paper256` / `paper512` have the reference's exact parameter counts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to rebuild G and D. `resolution` is the longer image side."""

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    resolution: int = 256
    aspect: tuple[int, int] = (1, 1)  # width : height; (4, 3) gives 4x3 base maps -> e.g. 128 x 96
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    channel_base: int = 16384
    channel_max: int = 512
    conv_clamp: float | None = 256.0
    mbstd_group: int = 4
    mbstd_channels: int = 1
    d_architecture: str = "resnet"  # "resnet" (StyleGAN2) or "orig" (the reference's cifar config)
    cmap_dim: int | None = None  # projection-conditioning width in D; None = channels at 4x4
    d_mapping_layers: int = 8  # mapping network that embeds labels for D's projection
    invert: bool = False  # trained on inverted colours; generation undoes it
    num_fp16_res: int = 0  # recorded for imported models; our networks compute float32 on CPU

    def __post_init__(self) -> None:
        if isinstance(self.aspect, list):  # JSON gives lists back
            object.__setattr__(self, "aspect", tuple(self.aspect))
        res = self.resolution
        if res < 16 or res > 1024 or res & (res - 1):
            raise ValueError(f"resolution must be a power of two in [16, 1024], got {res}")
        a, b = self.aspect
        longer = max(a, b)
        if a <= 0 or b <= 0 or (4 * a) % longer or (4 * b) % longer:
            raise ValueError(f"aspect {a}:{b} must give an integer 4-pixel base (1:1, 4:3, 3:4, 2:1, 1:2)")
        if self.d_architecture not in ("resnet", "orig"):
            raise ValueError(f"d_architecture must be 'resnet' or 'orig', got {self.d_architecture!r}")

    @property
    def base_size(self) -> tuple[int, int]:
        """(height, width) of the 4-pixel base map the synthesis starts from and D ends on."""
        a, b = self.aspect
        longer = max(a, b)
        return (4 * b // longer, 4 * a // longer)

    @property
    def img_height(self) -> int:
        return self.base_size[0] * self.resolution // 4

    @property
    def img_width(self) -> int:
        return self.base_size[1] * self.resolution // 4

    @property
    def block_resolutions(self) -> list[int]:
        """Resolutions of the synthesis blocks, 4 .. resolution (longer side)."""
        return [2**i for i in range(2, self.resolution.bit_length())]

    def channels(self, res: int) -> int:
        """Feature maps at a block resolution."""
        return min(self.channel_base // res, self.channel_max)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["aspect"] = list(self.aspect)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetworkConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown network config keys: {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class TrainingDefaults:
    """Per-preset optimisation defaults (REFERENCES.md's table); `sneakergan train` flags override them."""

    batch: int = 32
    lr: float = 0.002
    gamma: float = 10.0
    ema_kimg: float = 10.0
    ema_rampup: float | None = None
    pl_weight: float = 2.0
    style_mix: float = 0.9


@dataclass(frozen=True)
class Preset:
    name: str
    network: NetworkConfig
    training: TrainingDefaults = field(default_factory=TrainingDefaults)
    about: str = ""


def _p(name: str, about: str, training: TrainingDefaults, **net: Any) -> Preset:
    return Preset(name=name, network=NetworkConfig(**net), training=training, about=about)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        _p("tiny", "CPU tests and smoke runs: 32 px, 64-d z/w, 2 mapping layers",
           TrainingDefaults(batch=16, lr=0.0025, gamma=0.05, ema_kimg=1.0, ema_rampup=0.05, pl_weight=0.0, style_mix=0.0),
           z_dim=64, w_dim=64, resolution=32, mapping_layers=2, channel_base=2048, channel_max=64, mbstd_group=4),
        # Batch 32, gamma 1 and stddev groups of 8: with batch 16, gamma 0.1 and groups of 4 this narrow pair
        # mode-collapsed after 25 kimg on the synthetic set (models/README.md).
        _p("demo64", "the shipped demo model: 64 px, narrow (channel_base 2048, max 128), 2 mapping layers",
           TrainingDefaults(batch=32, lr=0.002, gamma=1.0, ema_kimg=2.5, ema_rampup=0.05, pl_weight=0.0, style_mix=0.9),
           z_dim=512, w_dim=512, resolution=64, mapping_layers=2, channel_base=2048, channel_max=128, mbstd_group=8),
        # The shipped landscape model: side views are wide, so 4:3 from a 4x3 constant. Narrow enough that a 2-core
        # CPU trains it in hours and its full checkpoint (with optimiser state) stays under 40 MB.
        _p("demo128", "the shipped demo model: 128x96 landscape (4:3), z/w 256, channel_base 2048, max 128",
           TrainingDefaults(batch=32, lr=0.002, gamma=0.5, ema_kimg=2.5, ema_rampup=0.05, pl_weight=0.0, style_mix=0.9),
           z_dim=256, w_dim=256, resolution=128, aspect=(4, 3), mapping_layers=2, channel_base=2048, channel_max=128,
           mbstd_group=8),
        _p("small", "laptop experiments: fmaps 0.125 (channel_base 4096, max 512), 8 mapping layers, 128 px",
           TrainingDefaults(batch=16, lr=0.0025, gamma=0.2, ema_kimg=5.0, ema_rampup=0.05),
           resolution=128, mapping_layers=8, channel_base=4096, channel_max=512, mbstd_group=4),
        _p("stylegan2", "StyleGAN2 config-f (fmaps 1), 1024 px",
           TrainingDefaults(batch=32, lr=0.002, gamma=10.0, ema_kimg=10.0),
           resolution=1024, channel_base=32768, channel_max=512, mbstd_group=4),
        _p("paper256", "ADA paper, 256 px (fmaps 0.5)",
           TrainingDefaults(batch=64, lr=0.0025, gamma=1.0, ema_kimg=20.0),
           resolution=256, channel_base=16384, channel_max=512, mbstd_group=8),
        _p("paper512", "ADA paper, 512 px (fmaps 1)",
           TrainingDefaults(batch=64, lr=0.0025, gamma=0.5, ema_kimg=20.0),
           resolution=512, channel_base=32768, channel_max=512, mbstd_group=8),
        _p("paper1024", "ADA paper, 1024 px (fmaps 1)",
           TrainingDefaults(batch=32, lr=0.002, gamma=2.0, ema_kimg=10.0),
           resolution=1024, channel_base=32768, channel_max=512, mbstd_group=4),
        _p("cifar", "ADA paper's CIFAR-10 config: 32 px, 2 mapping layers, D without residuals",
           TrainingDefaults(batch=64, lr=0.0025, gamma=0.01, ema_kimg=500.0, ema_rampup=0.05, pl_weight=0.0, style_mix=0.0),
           resolution=32, mapping_layers=2, channel_base=32768, channel_max=512, mbstd_group=32, d_architecture="orig"),
    ]
}


def preset(name: str) -> NetworkConfig:
    """The network config of a named preset."""
    return get_preset(name).network


def get_preset(name: str) -> Preset:
    """A named preset (network + training defaults); unknown names list the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
