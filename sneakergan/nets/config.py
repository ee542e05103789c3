"""Network configuration and named presets.

One dataclass fully rebuilds a generator/discriminator pair; it is what model files store as JSON. Presets
follow the reference configurations (channel_base = fmaps x 32768, channels at resolution r =
min(channel_base / r, channel_max)) so `paper256` / `paper512` have the reference's exact parameter counts.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError


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
        # Every config is checked here, wherever it comes from (presets, flags, model JSON, imported pickles):
        # exact types and bounds first, then the parameter count, all before any network allocates a tensor.
        for name, value in _normalised_fields(self).items():
            object.__setattr__(self, name, value)
        _check_geometry(self)
        total = sum(estimate_parameters(self).values())
        if total > MAX_PARAMETERS:
            raise NetworkConfigError(f"network config would have {total:,} parameters (G + D); the limit is "
                                     f"{MAX_PARAMETERS:,}")

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
        """The config a dict describes (model JSON); anything wrong is one NetworkConfigError."""
        if not isinstance(d, dict):
            raise NetworkConfigError(f"network config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in d if k not in known]
        if unknown:
            raise NetworkConfigError(f"unknown network config keys: {sorted(map(str, unknown))[:5]}")
        return cls(**d)


class NetworkConfigError(UserError):
    """A network config with a wrong type, a value out of bounds, or networks too large to build."""


# Bounds far above any published StyleGAN2-ADA config and far below what exhausts memory; MAX_PARAMETERS
# (G + D, about 1 GB each as float32) is what actually bounds the allocation: the largest preset has ~59M.
MAX_PARAMETERS = 250_000_000
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "z_dim": (1, 4096), "w_dim": (1, 4096), "c_dim": (0, 65536), "resolution": (16, 1024), "img_channels": (1, 4),
    "mapping_layers": (1, 32), "channel_base": (1, 1 << 20), "channel_max": (1, 4096), "mbstd_group": (0, 256),
    "mbstd_channels": (0, 16), "d_mapping_layers": (0, 32), "num_fp16_res": (0, 10),
}
_FLOAT_BOUNDS: dict[str, tuple[float, float]] = {
    "mapping_lr_multiplier": (1e-6, 100.0), "w_avg_beta": (0.0, 1.0),
}


def _as_int(name: str, value: Any, lo: int, hi: int) -> int:
    # bool is an int subclass, and 3.0 or "3" in a model file is a mistake, not a width: exact types only.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise NetworkConfigError(f"network config {name} must be an integer, got {_show(value)}")
    if not lo <= value <= hi:
        raise NetworkConfigError(f"network config {name} = {_show(value)} is out of range [{lo}, {hi}]")
    return int(value)


def _as_real(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise NetworkConfigError(f"network config {name} must be a number, got {_show(value)}")
    f = float(value)
    if not (math.isfinite(f) and lo <= f <= hi):
        raise NetworkConfigError(f"network config {name} = {_show(value)} is out of range [{lo:g}, {hi:g}]")
    return f


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, (int, float, str, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _normalised_fields(cfg: "NetworkConfig") -> dict[str, Any]:
    """Each field checked for its exact type and bounds, as the plain Python value to store."""
    out: dict[str, Any] = {}
    for name, (lo, hi) in _INT_BOUNDS.items():
        out[name] = _as_int(name, getattr(cfg, name), lo, hi)
    for name, (lo, hi) in _FLOAT_BOUNDS.items():
        out[name] = _as_real(name, getattr(cfg, name), lo, hi)
    clamp = cfg.conv_clamp
    out["conv_clamp"] = None if clamp is None else _as_real("conv_clamp", clamp, 1e-3, 1e6)
    cmap = cfg.cmap_dim
    out["cmap_dim"] = None if cmap is None else _as_int("cmap_dim", cmap, 1, 4096)
    aspect = cfg.aspect
    if not isinstance(aspect, (tuple, list)) or len(aspect) != 2:
        raise NetworkConfigError(f"network config aspect must be two integers [width, height], got {_show(aspect)}")
    out["aspect"] = tuple(_as_int("aspect", a, 1, 64) for a in aspect)
    if cfg.d_architecture not in ("resnet", "orig") or not isinstance(cfg.d_architecture, str):
        raise NetworkConfigError(f"d_architecture must be 'resnet' or 'orig', got {_show(cfg.d_architecture)}")
    if not isinstance(cfg.invert, bool):
        raise NetworkConfigError(f"network config invert must be true or false, got {_show(cfg.invert)}")
    return out


def _check_geometry(cfg: "NetworkConfig") -> None:
    res = cfg.resolution
    if res & (res - 1):
        raise NetworkConfigError(f"resolution must be a power of two in [16, 1024], got {res}")
    a, b = cfg.aspect
    longer = max(a, b)
    if (4 * a) % longer or (4 * b) % longer:
        raise NetworkConfigError(f"aspect {a}:{b} must give an integer 4-pixel base (1:1, 4:3, 3:4, 2:1, 1:2)")
    if cfg.channel_base < res:
        raise NetworkConfigError(f"channel_base {cfg.channel_base} must be at least the resolution ({res}): "
                                 f"every layer needs channel_base / resolution >= 1 feature map")


def estimate_parameters(cfg: "NetworkConfig") -> dict[str, int]:
    """Tensor elements of G's and D's state dicts (parameters + saved buffers), from the config alone.

    Pure arithmetic that mirrors the layer shapes of nets/, so a config can be priced before anything is built;
    tests check it equals the built networks' counts exactly.
    """
    w, img_c = cfg.w_dim, cfg.img_channels
    bh, bw = cfg.base_size

    def fc(i: int, o: int, bias: bool = True) -> int:
        return i * o + (o if bias else 0)

    def mapping(z: int, c: int, width: int, layers: int, w_avg: bool) -> int:
        embed = width if c > 0 else 0
        n = fc(c, embed) if c > 0 else 0
        feats = [z + embed] + [width] * layers
        n += sum(fc(feats[i], feats[i + 1]) for i in range(layers))
        return n + (width if w_avg else 0)

    g = mapping(cfg.z_dim, cfg.c_dim, w, cfg.mapping_layers, True)
    for res in cfg.block_resolutions:
        out_c, pixels = cfg.channels(res), (bh * res // 4) * (bw * res // 4)
        in_c = cfg.channels(res // 2) if res > 4 else 0
        if in_c == 0:
            g += out_c * pixels  # the learned constant
        else:
            g += fc(w, in_c) + out_c * in_c * 9 + out_c + 1 + pixels  # conv0: affine, weight, bias, noise
        g += fc(w, out_c) + out_c * out_c * 9 + out_c + 1 + pixels    # conv1
        g += fc(w, out_c) + img_c * out_c + img_c                      # toRGB
    d = 0
    for res in reversed(cfg.block_resolutions[1:]):
        tmp, out_c = cfg.channels(res), cfg.channels(res // 2)
        if res == cfg.resolution:
            d += img_c * tmp + tmp                                     # fromRGB
        d += tmp * tmp * 9 + tmp + out_c * tmp * 9 + out_c
        if cfg.d_architecture == "resnet":
            d += out_c * tmp
    c4 = cfg.channels(4)
    cmap = (cfg.cmap_dim or c4) if cfg.c_dim > 0 else 0
    if cfg.c_dim > 0:
        d += mapping(0, cfg.c_dim, cmap, cfg.d_mapping_layers, False)
    d += (c4 + cfg.mbstd_channels) * c4 * 9 + c4 + fc(c4 * bh * bw, c4) + fc(c4, cmap or 1)
    return {"G": g, "D": d}


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
        _p("demo64", "the first demo model (collapsed in shape): 64 px, narrow (channel_base 2048, max 128), 2 mapping layers",
           TrainingDefaults(batch=32, lr=0.002, gamma=1.0, ema_kimg=2.5, ema_rampup=0.05, pl_weight=0.0, style_mix=0.9),
           z_dim=512, w_dim=512, resolution=64, mapping_layers=2, channel_base=2048, channel_max=128, mbstd_group=8),
        # The first landscape model: side views are wide, so 4:3 from a 4x3 constant. Narrow enough that a 2-core
        # CPU trains it in hours and its full checkpoint (with optimiser state) stays under 40 MB.
        _p("demo128", "landscape 128x96 (4:3), z/w 256, max 128: too slow on 2 CPU cores to ship (models/README.md)",
           TrainingDefaults(batch=32, lr=0.002, gamma=0.5, ema_kimg=2.5, ema_rampup=0.05, pl_weight=0.0, style_mix=0.9),
           z_dim=256, w_dim=256, resolution=128, aspect=(4, 3), mapping_layers=2, channel_base=2048, channel_max=128,
           mbstd_group=8),
        # demo128's network at 64 x 48: a quarter of the pixels and one block fewer, so a 2-core CPU gives it about
        # 1.6x the steps per hour (23 against 37 s/kimg), which the narrow network needs to learn more than one blob
        # of a shoe (models/README.md).
        _p("demo64x48", "the shipped demo model: 64x48 landscape (4:3), demo128's network at half the size",
           TrainingDefaults(batch=32, lr=0.002, gamma=1.0, ema_kimg=2.5, ema_rampup=0.05, pl_weight=0.0, style_mix=0.9),
           z_dim=256, w_dim=256, resolution=64, aspect=(4, 3), mapping_layers=2, channel_base=2048, channel_max=128,
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
        raise NetworkConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
