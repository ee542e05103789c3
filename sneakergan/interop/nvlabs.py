"""Import StyleGAN2-ADA snapshot pickles (NVlabs `network-snapshot-*.pkl`) into sneakergan model files.

Our module tree mirrors the reference's (mapping.fc0, synthesis.b8.conv0.affine, b32.skip, b4.fc, ...), so the name
mapping is the identity on parameter names; what this module adds is strictness: every tensor must be known and
shaped as our config says, and the constant FIR filters must be the [1, 3, 3, 1] filter our layers hard-wire.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

import torch

from ..modelfile import save_checkpoint
from ..nets import Discriminator, Generator, NetworkConfig
from ..nets.layers import fir_taps
from .safe_unpickle import PersistentRecord, UnsafePickleError, load_snapshot_pickle
from ..errors import UserError

NET_NAMES = ("G", "D", "G_ema")


class SnapshotImportError(UserError):
    """The snapshot was read safely but cannot be turned into our networks."""


def _flatten(rec: PersistentRecord, prefix: str = "", out: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    out = {} if out is None else out
    state = rec.state
    for group in ("_parameters", "_buffers"):
        for k, v in (state.get(group) or {}).items():
            if v is None:
                continue
            if not torch.is_tensor(v):
                raise SnapshotImportError(f"{prefix}{k} is a {type(v).__name__}, not a tensor")
            out[prefix + k] = v.detach().to(torch.float32)
    for k, m in (state.get("_modules") or {}).items():
        if m is None:
            continue
        if not isinstance(m, PersistentRecord):
            raise SnapshotImportError(f"submodule {prefix}{k} is not a reference network module")
        _flatten(m, prefix + k + ".", out)
    return out


def config_from_kwargs(g_kwargs: dict[str, Any], d_kwargs: dict[str, Any] | None) -> NetworkConfig:
    """Our NetworkConfig from the reference's pickled Generator (and Discriminator) constructor arguments."""
    mk = dict(g_kwargs.get("mapping_kwargs") or {})
    sk = dict(g_kwargs.get("synthesis_kwargs") or {})
    w_dim = int(g_kwargs["w_dim"])
    for key, default in (("embed_features", None), ("layer_features", None)):
        if mk.get(key) not in (default, w_dim):
            raise SnapshotImportError(f"mapping {key}={mk[key]} differs from w_dim; not supported")
    if sk.get("architecture", "skip") != "skip":
        raise SnapshotImportError(f"synthesis architecture {sk['architecture']!r} not supported (only 'skip')")
    if mk.get("activation", "lrelu") != "lrelu":
        raise SnapshotImportError(f"mapping activation {mk['activation']!r} not supported")
    d = dict(d_kwargs or {})
    ek = dict(d.get("epilogue_kwargs") or {})
    if d and d.get("architecture", "resnet") not in ("resnet", "orig"):
        raise SnapshotImportError(f"discriminator architecture {d['architecture']!r} not supported")
    group = ek.get("mbstd_group_size", 4)
    clamp = sk.get("conv_clamp")
    dmk = dict(d.get("mapping_kwargs") or {})
    return NetworkConfig(
        z_dim=int(g_kwargs["z_dim"]), w_dim=w_dim, c_dim=int(g_kwargs.get("c_dim", 0)),
        resolution=int(g_kwargs["img_resolution"]), img_channels=int(g_kwargs.get("img_channels", 3)),
        mapping_layers=int(mk.get("num_layers", 8)), mapping_lr_multiplier=float(mk.get("lr_multiplier", 0.01)),
        w_avg_beta=float(mk.get("w_avg_beta", 0.995)),
        channel_base=int(sk.get("channel_base", 32768)), channel_max=int(sk.get("channel_max", 512)),
        conv_clamp=None if clamp is None else float(clamp),
        mbstd_group=0 if group is None else int(group), mbstd_channels=int(ek.get("mbstd_num_channels", 1)),
        d_architecture=d.get("architecture", "resnet"), cmap_dim=d.get("cmap_dim"),
        d_mapping_layers=int(dmk.get("num_layers", 8)),
        num_fp16_res=int(sk.get("num_fp16_res", 0)),
    )


def _check_filters(tensors: dict[str, torch.Tensor], net_name: str) -> dict[str, torch.Tensor]:
    expected = torch.outer(fir_taps(), fir_taps())
    kept = {}
    for k, v in tensors.items():
        if k.endswith("resample_filter"):
            if v.shape != expected.shape or not torch.allclose(v, expected, atol=1e-6):
                raise SnapshotImportError(f"{net_name}.{k}: resample filter is not [1,3,3,1] (custom filters unsupported)")
            continue
        kept[k] = v
    return kept


def build_network(rec: PersistentRecord, name: str, cfg: NetworkConfig) -> torch.nn.Module:
    """Our network for one pickled record, every tensor mapped and checked (never a partial load)."""
    net: torch.nn.Module = Generator(cfg) if name.startswith("G") else Discriminator(cfg)
    got = _check_filters(_flatten(rec), name)
    own = net.state_dict()
    missing, unknown = sorted(set(own) - set(got)), sorted(set(got) - set(own))
    if missing:
        raise SnapshotImportError(f"{name}: tensors missing from the snapshot: {', '.join(missing[:5])}"
                                  f"{' ...' if len(missing) > 5 else ''}")
    if unknown:
        raise SnapshotImportError(f"{name}: unknown tensors in the snapshot: {', '.join(unknown[:5])}"
                                  f"{' ...' if len(unknown) > 5 else ''}")
    for k, v in got.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise SnapshotImportError(f"{name}.{k}: shape {tuple(v.shape)} in the snapshot, {tuple(own[k].shape)} in our config")
    net.load_state_dict(got, strict=True)
    return net.eval().requires_grad_(False)


def read_snapshot(pkl: str | Path, nets: Iterable[str] = ("G_ema",)) -> tuple[NetworkConfig, dict[str, torch.nn.Module], dict[str, Any]]:
    """Safely read a snapshot: (config, our networks, provenance)."""
    pkl = Path(pkl)
    snap = load_snapshot_pickle(pkl)
    nets = list(nets)
    for name in nets:
        if name not in NET_NAMES:
            raise SnapshotImportError(f"unknown network {name!r}; choose from {', '.join(NET_NAMES)}")
        if not isinstance(snap.get(name), PersistentRecord):
            raise SnapshotImportError(f"{pkl}: snapshot has no {name} network (keys: {sorted(snap)})")
    g_rec = snap.get("G_ema") if isinstance(snap.get("G_ema"), PersistentRecord) else snap.get(nets[0])
    if not isinstance(g_rec, PersistentRecord) or g_rec.short_name != "Generator":
        raise SnapshotImportError(f"{pkl}: snapshot has no generator to read the configuration from")
    d_rec = snap.get("D") if isinstance(snap.get("D"), PersistentRecord) else None
    try:
        cfg = config_from_kwargs(g_rec.init_kwargs, d_rec.init_kwargs if d_rec else None)
    except (KeyError, TypeError, ValueError) as e:
        raise SnapshotImportError(f"{pkl}: cannot read the network configuration ({e})") from None
    built = {}
    for name in nets:
        rec = snap[name]
        want = "Discriminator" if name == "D" else "Generator"
        if rec.short_name != want:
            raise SnapshotImportError(f"{pkl}: {name} is a {rec.class_name}, expected a {want}")
        try:
            built[name] = build_network(rec, name, cfg)
        except SnapshotImportError as e:
            raise SnapshotImportError(f"{pkl}: {e}") from None
    aug = snap.get("augment_pipe")
    p = None
    if isinstance(aug, PersistentRecord):
        pt = (aug.state.get("_buffers") or {}).get("p")
        p = float(pt) if torch.is_tensor(pt) else None
    provenance = {
        "imported_from": pkl.name,
        "source_sha256": hashlib.sha256(pkl.read_bytes()).hexdigest(),
        "original_args": {k: snap[k].init_kwargs for k in NET_NAMES if isinstance(snap.get(k), PersistentRecord)},
        "training_set_kwargs": dict(snap.get("training_set_kwargs") or {}),
        "augment_p": p,
        "fp16_note": "num_fp16_res recorded; sneakergan computes float32 on CPU",
    }
    return cfg, built, provenance


def import_snapshot(pkl: str | Path, out: str | Path, nets: Iterable[str] = ("G_ema",)) -> Path:
    """Read a snapshot safely and write our model file. Nothing is written when anything fails."""
    cfg, built, provenance = read_snapshot(pkl, nets)
    state = {"augment_p": provenance["augment_p"]} if provenance["augment_p"] is not None else {}
    return save_checkpoint(out, cfg, built, state=state, provenance=provenance)


__all__ = ["import_snapshot", "read_snapshot", "config_from_kwargs", "SnapshotImportError", "UnsafePickleError"]
