"""Projection: find the w (W or W+) and noise maps whose image reconstructs a photo, so it can be edited like a seed.

Follows the optimisation described in the StyleGAN2 paper (Karras et al. 2020, appendix D): start at the
average w, Adam with a learning rate that ramps up over the first 5% of steps and down (cosine) over the last
25%, Gaussian noise of decreasing strength added to w during the first 75% (it explores the space instead of
settling in the first basin), and the per-layer noise maps optimised too, with a regulariser that penalises
their autocorrelation at every scale (so the maps cannot smuggle the image in) and renormalisation after each
step.

The loss works offline: a multi-scale pixel loss plus, when the model file holds D, a discriminator-feature
loss (distances between D's block activations for the photo and the reconstruction, each normalised by the
photo's activation energy). With a local VGG16 / LPIPS weights file a perceptual loss is added.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn

from ..generate import images_to_uint8
from ..errors import UserError

MIN_PHOTO_SIDE = 16
MAX_PHOTO_PIXELS = 64_000_000


class ProjectError(UserError):
    """The photo cannot be projected (unreadable, too small, wrong model...); the message says why."""


@dataclass(frozen=True)
class ProjectConfig:
    """Knobs of the optimisation; defaults follow the StyleGAN2 paper where it gives them."""

    steps: int = 300
    w_plus: bool = False
    lr: float = 0.1
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    w_noise: float = 0.05          # initial strength of the noise added to w, times the spread of w
    w_noise_ramp: float = 0.75     # fraction of the steps over which it decays to 0
    optimise_noise: bool = True
    noise_reg: float = 1e5
    pixel_weight: float = 1.0
    d_weight: float = 0.1
    perceptual_weight: float = 1.0
    w_samples: int = 10000
    seed: int = 0


@dataclass
class Projection:
    """What `project` found: ws [num_ws, w_dim], noise maps by layer name, per-step losses and the images."""

    ws: torch.Tensor
    noise: dict[str, torch.Tensor]
    losses: list[float]
    errors: list[float]  # pixel MSE at full resolution, in [-1, 1] units, per step
    image: np.ndarray    # uint8 HxWx3 reconstruction
    target: np.ndarray   # uint8 HxWx3 normalised photo
    info: dict[str, Any] = field(default_factory=dict)


# ---- photos ---------------------------------------------------------------------------------------------------------
def load_photo(path: str | Path) -> Image.Image:
    """Open a photo as RGB (transparency composited on white); clear ProjectError for anything unusable."""
    path = Path(path)
    if not path.exists():
        raise ProjectError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PHOTO_PIXELS:
                raise ProjectError(f"{path}: {im.width}x{im.height} is too many pixels (max {MAX_PHOTO_PIXELS:,})")
            im.load()
            if min(im.size) < MIN_PHOTO_SIDE:
                raise ProjectError(f"{path}: {im.width}x{im.height} is too small; need at least {MIN_PHOTO_SIDE} px "
                                   "on each side")
            return to_rgb(im)
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ProjectError(f"{path}: not an image Pillow can read") from None
    except OSError as e:
        raise ProjectError(f"{path}: truncated or corrupt image ({e})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB with any alpha composited onto white (product shots with transparent backgrounds)."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


def fit_photo(img: Image.Image, width: int, height: int) -> Image.Image:
    """Normalise like `prepare` (crop to the shoe, centre on white, toe left), sized to the model's frame."""
    img = to_rgb(img)
    if min(img.size) < MIN_PHOTO_SIDE:
        raise ProjectError(f"photo is {img.width}x{img.height}; need at least {MIN_PHOTO_SIDE} px on each side")
    side = max(width, height)
    try:
        from ..prepare.normalise import NormaliseConfig, normalise

        square = normalise(img, NormaliseConfig(resolution=side)).image
    except ImportError:  # prepare not installed with this build: a plain white-background fit
        square = _simple_fit(img, side)
    if (width, height) == (side, side):
        return square
    # Non-square models: shrink the square to fit the frame and centre it on white.
    s = min(width, height)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(square.resize((s, s), Image.Resampling.LANCZOS), ((width - s) // 2, (height - s) // 2))
    return canvas


def _simple_fit(img: Image.Image, side: int) -> Image.Image:
    """Centre the photo on a white square and resize (no segmentation)."""
    s = max(img.size)
    canvas = Image.new("RGB", (s, s), (255, 255, 255))
    canvas.paste(img, ((s - img.width) // 2, (s - img.height) // 2))
    return canvas.resize((side, side), Image.Resampling.LANCZOS)


def photo_tensor(img: Image.Image, invert: bool = False) -> torch.Tensor:
    """uint8 RGB image -> [1, 3, H, W] float in [-1, 1] (negated for models trained on inverted colours)."""
    x = torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1
    return -x if invert else x


# ---- losses ---------------------------------------------------------------------------------------------------------
def multiscale_mse(a: torch.Tensor, b: torch.Tensor, min_side: int = 8) -> torch.Tensor:
    """Mean of the MSEs of an image pyramid (full size, /2, /4 ... down to `min_side`): coarse levels pull the
    overall shape and colour into place early, fine levels the detail."""
    losses = [F.mse_loss(a, b)]
    while min(a.shape[-2:]) >= 2 * min_side:
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        losses.append(F.mse_loss(a, b))
    return torch.stack(losses).mean()


def d_features(D: nn.Module, img: torch.Tensor) -> list[torch.Tensor]:
    """Activations after each of D's resolution blocks (highest resolution first)."""
    feats, x = [], None
    for res in D.block_resolutions:
        x = getattr(D, f"b{res}")(x, img)
        feats.append(x)
    return feats


def feature_loss(feats: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of MSE normalised by the target's mean square (so every layer counts about equally)."""
    return sum(F.mse_loss(f, t) / (t.square().mean() + 1e-8) for f, t in zip(feats, target))


_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_LPIPS_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's numbering


class Perceptual(nn.Module):
    """LPIPS-style distance on VGG16 features from local weight files (torchvision's `features.*` keys; LPIPS's
    `lin{k}.model.1.weight` layer weights if present, else an unweighted channel mean)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_c = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(in_c, int(v), 3, padding=1), nn.ReLU()]
                in_c = int(v)
        self.features = nn.Sequential(*layers)
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        try:
            self.features.load_state_dict(feats, strict=True)
        except RuntimeError as e:
            raise ProjectError(f"perceptual weights do not hold VGG16 features ({str(e).splitlines()[0]})") from None
        self.lins = [state.get(f"lin{k}.model.1.weight") for k in range(len(_LPIPS_TAPS))]
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        if min(x.shape[-2:]) < 64:  # VGG's five poolings need some room
            x = F.interpolate(x, scale_factor=64 / min(x.shape[-2:]), mode="bilinear", align_corners=False)
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _LPIPS_TAPS:
                out.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def distance(self, feats: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
        total = 0
        for f, t, lin in zip(feats, target, self.lins):
            d = (f - t).square()
            d = (d * lin.reshape(1, -1, 1, 1).to(d)).sum(1) if lin is not None else d.mean(1)
            total = total + d.mean()
        return total


def load_perceptual(paths: Iterable[str | Path]) -> Perceptual:
    """Merge weight files (.safetensors, or .pt/.pth read with weights_only=True) into a Perceptual loss."""
    state: dict[str, torch.Tensor] = {}
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ProjectError(f"{p}: perceptual weights file not found")
        try:
            if p.suffix == ".safetensors":
                from safetensors.torch import load_file

                sd = load_file(str(p))
            else:
                sd = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            raise ProjectError(f"{p}: cannot read weights ({type(e).__name__}: {e})") from None
        if not isinstance(sd, dict):
            raise ProjectError(f"{p}: expected a state dict of tensors")
        state.update({k.removeprefix("net."): v for k, v in sd.items() if torch.is_tensor(v)})
    return Perceptual(state)


def noise_regularisation(maps: Iterable[torch.Tensor]) -> torch.Tensor:
    """Squared autocorrelation (one-pixel shifts in x and y) of each noise map at every scale down to 8 px."""
    reg = None
    for n in maps:
        n = n.reshape(1, 1, *n.shape[-2:])
        while True:
            r = (n * torch.roll(n, 1, dims=3)).mean().square() + (n * torch.roll(n, 1, dims=2)).mean().square()
            reg = r if reg is None else reg + r
            if min(n.shape[-2:]) <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return reg if reg is not None else torch.zeros([])


def _lr_schedule(t: float, cfg: ProjectConfig) -> float:
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return cfg.lr * ramp * min(1.0, t / cfg.lr_rampup)


# ---- the optimisation -----------------------------------------------------------------------------------------------
def project(G: nn.Module, image: Image.Image | torch.Tensor, steps: int | None = None, w_plus: bool | None = None,
            D: nn.Module | None = None, perceptual: Perceptual | None = None, config: ProjectConfig | None = None,
            callback: Callable[[int, int, dict[str, float]], Any] | None = None,
            normalise: bool = True) -> Projection:
    """Optimise w (and noise) so G reconstructs `image` (a PIL photo, or a [1, 3, H, W] tensor in G's output space).

    `callback(step, total, {"loss", "error", "lr"})` runs after every step (a progress bar or a web page's
    progress); returning False stops early. Returns the last step's w and noise (as the paper).
    """
    cfg = config or ProjectConfig()
    if steps is not None:
        cfg = _replace(cfg, steps=steps)
    if w_plus is not None:
        cfg = _replace(cfg, w_plus=w_plus)
    if cfg.steps < 1:
        raise ProjectError("steps must be at least 1")
    if G.c_dim:
        raise ProjectError("projection supports unconditional models only")
    dev = next(G.parameters()).device
    H, W = G.img_height, G.img_width
    invert = bool(getattr(G.cfg, "invert", False))
    if isinstance(image, torch.Tensor):
        target = image.to(dev, torch.float32)
        if tuple(target.shape) != (1, G.img_channels, H, W):
            raise ProjectError(f"target tensor must be [1, {G.img_channels}, {H}, {W}], got {tuple(target.shape)}")
        target_u8 = images_to_uint8(target, invert)[0]
    else:
        photo = fit_photo(image, W, H) if normalise else to_rgb(image).resize((W, H), Image.Resampling.LANCZOS)
        target = photo_tensor(photo, invert).to(dev)
        target_u8 = np.asarray(photo)

    # Work on a copy whose constant-noise buffers are optimisable leaves; the caller's G is untouched.
    synth = copy.deepcopy(G.synthesis).requires_grad_(False)
    noise_names = [n[: -len(".noise_const")] for n, _ in synth.named_buffers() if n.endswith("noise_const")]
    noise_maps: dict[str, torch.Tensor] = {}
    for name in noise_names:
        layer = synth.get_submodule(name)
        leaf = layer.noise_const.detach().clone().requires_grad_(cfg.optimise_noise)
        layer._buffers["noise_const"] = leaf  # a buffer may be any tensor; this one carries gradients
        noise_maps[name] = leaf

    with torch.no_grad():
        gen = torch.Generator().manual_seed(cfg.seed)
        z = torch.randn(cfg.w_samples, G.z_dim, generator=gen).to(dev)
        w_samples = torch.cat([G.mapping(z[i: i + 4096], None)[:, 0] for i in range(0, len(z), 4096)])
        w_avg = w_samples.mean(0)
        w_spread = ((w_samples - w_avg).square().sum(1).mean()).sqrt().item()
        d_target = d_features(D, target) if D is not None and cfg.d_weight > 0 else None
        p_target = perceptual.taps(target) if perceptual is not None else None
    w_opt = w_avg.reshape(1, 1, -1).repeat(1, G.num_ws if cfg.w_plus else 1, 1).clone().requires_grad_(True)
    params = [w_opt] + (list(noise_maps.values()) if cfg.optimise_noise else [])
    opt = torch.optim.Adam(params, betas=(0.9, 0.999), lr=cfg.lr)
    torch.manual_seed(cfg.seed)
    losses: list[float] = []
    errors: list[float] = []
    with torch.enable_grad():
        for step in range(cfg.steps):
            t = step / cfg.steps
            w_noise_scale = w_spread * cfg.w_noise * max(0.0, 1.0 - t / cfg.w_noise_ramp) ** 2
            lr = _lr_schedule(t, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            w = w_opt + torch.randn_like(w_opt) * w_noise_scale
            ws = w.expand(1, G.num_ws, -1)
            img = synth(ws, noise_mode="const")
            loss = cfg.pixel_weight * multiscale_mse(img, target)
            if d_target is not None:
                loss = loss + cfg.d_weight * feature_loss(d_features(D, img), d_target)
            if p_target is not None:
                loss = loss + cfg.perceptual_weight * perceptual.distance(perceptual.taps(img), p_target)
            if cfg.optimise_noise:
                loss = loss + cfg.noise_reg * noise_regularisation(noise_maps.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for n in noise_maps.values():  # keep the maps unit Gaussian-like
                    n.sub_(n.mean()).div_(n.std() + 1e-8)
            err = F.mse_loss(img.detach(), target).item()
            losses.append(loss.item())
            errors.append(err)
            if callback is not None and callback(step + 1, cfg.steps, {"loss": losses[-1], "error": err, "lr": lr}) is False:
                break
    with torch.no_grad():
        final_ws = w_opt.detach().expand(1, G.num_ws, -1)[0].clone()
        img = synth(final_ws.unsqueeze(0), noise_mode="const")
        final_err = F.mse_loss(img, target).item()
        # The baseline a projection must beat: the average sneaker, with the model's own noise.
        mean_err = F.mse_loss(G.synthesis(w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1), noise_mode="const"),
                              target).item()
    noise_out = {k: v.detach().clone() for k, v in noise_maps.items()} if cfg.optimise_noise else {}
    info = {"steps": len(losses), "w_plus": cfg.w_plus, "final_error": final_err, "mean_image_error": mean_err,
            "d_loss": d_target is not None, "perceptual": perceptual is not None}
    return Projection(ws=final_ws.cpu(), noise={k: v.cpu() for k, v in noise_out.items()}, losses=losses,
                      errors=errors, image=images_to_uint8(img, invert)[0], target=target_u8, info=info)


def _replace(cfg: ProjectConfig, **kw: Any) -> ProjectConfig:
    import dataclasses

    return dataclasses.replace(cfg, **kw)
