"""Feature extractors for the metrics: the FID Inception-v3 and a small random network for tests.

The Inception network is the one FID is defined with: the 2015-12-05 TensorFlow Inception graph as
ported by pytorch-fid (its weights file `pt_inception-2015-12-05-6726825d.pth`), 2048-d features from the
final average pool, input resized to 299x299 (bilinear) and scaled to [-1, 1]. Parameter names follow
that file, so it loads directly. Weights come only from a local file: nothing is downloaded.

Every extractor takes uint8 images [N, 3, H, W] (or [N, H, W, 3] numpy) and returns float32 [N, D].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..fileio import sha256_file
from ..errors import UserError

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + INCEPTION_FILE
INCEPTION_ENV = "SNEAKERGAN_INCEPTION"
EXTRACTORS = ("inception", "random-tiny")


class MissingWeightsError(UserError, FileNotFoundError):
    """The Inception weights file is not on this machine; the message says which file and where."""


def default_cache_dir() -> Path:
    """~/.cache/sneakergan, or $XDG_CACHE_HOME/sneakergan."""
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "sneakergan"


def missing_weights_message(looked_at: list[Path]) -> str:
    """One paragraph naming the file needed, where to get it and where to put it."""
    where = ", ".join(str(p) for p in looked_at) or "(nowhere)"
    return (
        f"FID Inception weights not found (looked at: {where}). Download {INCEPTION_FILE} from the pytorch-fid "
        f"GitHub releases ({INCEPTION_URL}) on a machine with internet, then pass it with --features PATH, "
        f"set {INCEPTION_ENV}=PATH, or put it at {default_cache_dir() / INCEPTION_FILE}. "
        "Nothing is downloaded at run time. For a quick, non-comparable check use --extractor random-tiny."
    )


def resolve_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The weights file to use: `path`, else $SNEAKERGAN_INCEPTION, else the cache dir; raises if absent."""
    if path is not None:
        candidates = [Path(path).expanduser()]
    elif os.environ.get(INCEPTION_ENV):
        candidates = [Path(os.environ[INCEPTION_ENV]).expanduser()]
    else:
        candidates = [default_cache_dir() / INCEPTION_FILE, default_cache_dir() / "inception-2015-12-05.safetensors"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise MissingWeightsError(missing_weights_message(candidates))


# ----------------------------------------------------------------------------------------------
# Inception-v3 (FID variant). Names match the pytorch-fid weights file.


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3, as in the TF graph) + ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool ignores the zero padding in its denominator.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, 1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, c_in: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """The last two blocks; the TF graph's final block pools with max instead of average (`max_pool`)."""

    def __init__(self, c_in: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(c_in, 320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class InceptionV3Features(nn.Module):
    """FID Inception-v3 up to the 2048-d average pool. Input: uint8 (or float in [0, 255]) [N, 3, H, W]."""

    feature_dim = 2048

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or a torch state dict (.pth/.pt, read with weights_only=True)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise several types for a damaged or foreign file
        raise ValueError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a state dict of tensors")
    return state


def load_inception(path: str | os.PathLike) -> InceptionV3Features:
    """Build the FID Inception and load weights from `path`; every feature parameter must be present.

    The classifier head (`fc.*`) in the pytorch-fid file is not used and is skipped; a file without
    `num_batches_tracked` entries (the original conversion) loads fine.
    """
    net = InceptionV3Features()
    state = read_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path} does not look like the FID Inception weights ({INCEPTION_FILE}): "
            f"{len(missing)} missing tensors (e.g. {missing[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]})"
        )
    return net.eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------------
# Random tiny extractor: fast, deterministic, NOT comparable to published numbers.


class RandomTinyFeatures(nn.Module):
    """A small conv net initialised from a fixed seed: for tests and smoke checks on CPU."""

    feature_dim = 64

    def __init__(self, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        chans = [3, 16, 32, 64]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(chans, chans[1:]))
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / np.sqrt(conv.weight[0].numel()))
                conv.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float() / 127.5 - 1, size=(64, 64), mode="bilinear", align_corners=False)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return x.mean(dim=(2, 3))


# ----------------------------------------------------------------------------------------------


@dataclass
class FeatureExtractor:
    """A feature network plus what the report needs to know about it."""

    net: nn.Module
    name: str  # "inception" or "random-tiny"
    ident: str  # goes into cache keys: changes when the weights change
    comparable: bool  # True only for the standard FID Inception
    device: torch.device

    @property
    def feature_dim(self) -> int:
        return self.net.feature_dim

    @torch.no_grad()
    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """uint8 images, [N, 3, H, W] tensor or [N, H, W, 3] array -> float32 features [N, D]."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        if images.shape[1] == 1:  # greyscale models: the networks expect RGB
            images = images.expand(-1, 3, -1, -1)
        return self.net(images.to(self.device)).float().cpu().numpy()


def build_extractor(
    name: str = "inception", weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> FeatureExtractor:
    """The named extractor on `device`. Raises MissingWeightsError when Inception weights are absent."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # "cuda" and "cuda:0" must compare equal later on
        device = torch.device("cuda", torch.cuda.current_device())
    if name == "inception":
        path = resolve_inception_weights(weights)
        net = load_inception(path)
        ident = "inception-" + sha256_file(path)[:12]
        return FeatureExtractor(net.to(device), name, ident, True, device)
    if name == "random-tiny":
        return FeatureExtractor(RandomTinyFeatures(seed=0).eval().to(device), name, "random-tiny-s0", False, device)
    raise ValueError(f"unknown extractor {name!r}; choose from {', '.join(EXTRACTORS)}")
