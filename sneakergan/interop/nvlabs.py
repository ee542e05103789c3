"""Import StyleGAN2-ADA snapshot pickles (NVlabs `network-snapshot-*.pkl`) into sneakergan model files.

Our module tree mirrors the reference's (mapping.fc0, synthesis.b8.conv0.affine, b32.skip, b4.fc, ...), so the name
mapping is the identity on parameter names; what this module adds is strictness: every tensor must be known and
shaped as our config says, and the constant FIR filters must be the [1, 3, 3, 1] filter our layers hard-wire.

Hostile files are bounded: module trees are walked iteratively (depth and count limits, so neither a 100,000-deep
chain nor a shared-reference "billion laughs" tree costs more than the limits), the configuration goes through the
one strict NetworkConfig validator (its parameter count is known before any network exists), every tensor's name,
type and shape is checked before any is converted, and the model is written into a temporary folder that is
removed on any failure.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ..errors import UserError
from ..fileio import sha256_file
from ..modelfile import expected_shapes, model_paths, save_checkpoint
from ..nets import Discriminator, Generator, NetworkConfig
from ..nets.layers import fir_taps
from .safe_unpickle import PersistentRecord, UnsafePickleError, load_snapshot_pickle

NET_NAMES = ("G", "D", "G_ema")
MAX_MODULE_DEPTH = 16       # the reference nests 4 deep (G.synthesis.b8.conv0.affine)
MAX_MODULES = 5_000         # a 1024 px G has about 150 modules
MAX_TENSORS = 5_000
MAX_JSON_NODES = 20_000     # keyword arguments kept as provenance: a few hundred values in a real snapshot
MAX_JSON_DEPTH = 16
MAX_STRING_CHARS = 10_000
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class SnapshotImportError(UserError):
    """The snapshot was read safely but cannot be turned into our networks."""


def _flatten(rec: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """{dotted name: tensor} of a module tree, walked iteratively with depth and size limits (no conversion)."""
    out: dict[str, torch.Tensor] = {}
    stack: list[tuple[PersistentRecord, str, int]] = [(rec, prefix, 0)]
    visited = 0
    while stack:
        node, pre, depth = stack.pop()
        visited += 1
        if visited > MAX_MODULES:
            raise SnapshotImportError(f"more than {MAX_MODULES} modules (shared or crafted module tree)")
        if depth > MAX_MODULE_DEPTH:
            raise SnapshotImportError(f"modules nest deeper than {MAX_MODULE_DEPTH} levels ({pre[:80]}...)")
        state = node.state
        for group in ("_parameters", "_buffers", "_modules"):
            items = state.get(group) or {}
            if not isinstance(items, dict):
                raise SnapshotImportError(f"{pre}{group} is a {type(items).__name__}, not a dict")
            for k, v in items.items():
                if not isinstance(k, str) or not _NAME_RE.fullmatch(k):
                    raise SnapshotImportError(f"{pre}{group} has a malformed name {_show(k)}")
                if v is None:
                    continue
                if group == "_modules":
                    if not isinstance(v, PersistentRecord):
                        raise SnapshotImportError(f"submodule {pre}{k} is not a reference network module")
                    stack.append((v, pre + k + ".", depth + 1))
                    continue
                if not torch.is_tensor(v):
                    raise SnapshotImportError(f"{pre}{k} is a {type(v).__name__}, not a tensor")
                _check_tensor(pre + k, v)
                out[pre + k] = v
                if len(out) > MAX_TENSORS:
                    raise SnapshotImportError(f"more than {MAX_TENSORS} tensors")
    return out


def _check_tensor(name: str, t: torch.Tensor) -> None:
    """A plain dense floating-point tensor that its storage really holds (BUILD can re-point a tensor)."""
    if type(t) not in (torch.Tensor, torch.nn.Parameter) or t.layout != torch.strided or t.dtype not in FLOAT_DTYPES:
        raise SnapshotImportError(f"{name} is a {t.dtype} {t.layout} tensor; snapshots hold dense float tensors")
    needed = (t.storage_offset() + t.numel()) * t.element_size()
    if t.numel() and (not t.is_contiguous() or needed > t.untyped_storage().nbytes()):
        raise SnapshotImportError(f"{name}: shape {tuple(t.shape)} with strides {t.stride()} is not a contiguous "
                                  "view of its storage")


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def plain_json(value: Any, what: str) -> Any:
    """A JSON-ready copy of pickled keyword arguments, walked iteratively with node, depth and size limits.

    Shared references are copied once per reference, so a "billion laughs" of nested lists stops at the node
    limit instead of exhausting memory when the provenance is written.
    """
    nodes = 0

    def leaf(v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, str)):
            if isinstance(v, str) and len(v) > MAX_STRING_CHARS:
                raise SnapshotImportError(f"{what}: a string of {len(v):,} characters")
            if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
                raise SnapshotImportError(f"{what}: an integer of {v.bit_length()} bits")
            return v
        if isinstance(v, float):
            return v if np.isfinite(v) else str(v)
        if isinstance(v, np.generic):
            return leaf(v.item())
        if isinstance(v, PersistentRecord):
            return f"<{v.class_name}>"
        if torch.is_tensor(v):
            return f"<tensor {tuple(v.shape)}>"
        return f"<{type(v).__name__}>"

    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        v, parent, key, depth = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise SnapshotImportError(f"{what} has more than {MAX_JSON_NODES:,} values (shared or crafted "
                                      "references)")
        if depth > MAX_JSON_DEPTH:
            raise SnapshotImportError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(v, dict):
            out: Any = {}
            for k, item in v.items():
                if not isinstance(k, str):
                    raise SnapshotImportError(f"{what} has a non-string key {_show(k)}")
                out[k] = None
                stack.append((item, out, k, depth + 1))
        elif isinstance(v, (list, tuple)):
            out = [None] * len(v)
            for i, item in enumerate(v):
                stack.append((item, out, i, depth + 1))
        else:
            out = leaf(v)
        parent[key] = out
    return root[0]


def config_from_kwargs(g_kwargs: dict[str, Any], d_kwargs: dict[str, Any] | None) -> NetworkConfig:
    """Our NetworkConfig from the reference's pickled Generator (and Discriminator) constructor arguments."""
    # Values go to NetworkConfig as pickled: its validator wants exact types, so 3.5 or "512" is refused there
    # instead of being truncated to a width here.
    mk = _kwargs(g_kwargs.get("mapping_kwargs"), "mapping_kwargs")
    sk = _kwargs(g_kwargs.get("synthesis_kwargs"), "synthesis_kwargs")
    w_dim = g_kwargs["w_dim"]
    for key, default in (("embed_features", None), ("layer_features", None)):
        if mk.get(key) not in (default, w_dim):
            raise SnapshotImportError(f"mapping {key}={mk[key]} differs from w_dim; not supported")
    if sk.get("architecture", "skip") != "skip":
        raise SnapshotImportError(f"synthesis architecture {sk['architecture']!r} not supported (only 'skip')")
    if mk.get("activation", "lrelu") != "lrelu":
        raise SnapshotImportError(f"mapping activation {mk['activation']!r} not supported")
    d = _kwargs(d_kwargs, "discriminator kwargs")
    ek = _kwargs(d.get("epilogue_kwargs"), "epilogue_kwargs")
    if d and d.get("architecture", "resnet") not in ("resnet", "orig"):
        raise SnapshotImportError(f"discriminator architecture {d['architecture']!r} not supported")
    group = ek.get("mbstd_group_size", 4)
    clamp = sk.get("conv_clamp")
    dmk = _kwargs(d.get("mapping_kwargs"), "discriminator mapping_kwargs")
    return NetworkConfig(
        z_dim=g_kwargs["z_dim"], w_dim=w_dim, c_dim=g_kwargs.get("c_dim", 0),
        resolution=g_kwargs["img_resolution"], img_channels=g_kwargs.get("img_channels", 3),
        mapping_layers=mk.get("num_layers", 8), mapping_lr_multiplier=mk.get("lr_multiplier", 0.01),
        w_avg_beta=mk.get("w_avg_beta", 0.995),
        channel_base=sk.get("channel_base", 32768), channel_max=sk.get("channel_max", 512),
        conv_clamp=clamp,
        mbstd_group=0 if group is None else group, mbstd_channels=ek.get("mbstd_num_channels", 1),
        d_architecture=d.get("architecture", "resnet"), cmap_dim=d.get("cmap_dim"),
        d_mapping_layers=dmk.get("num_layers", 8),
        num_fp16_res=sk.get("num_fp16_res", 0),
    )


def _kwargs(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SnapshotImportError(f"{what} is a {type(value).__name__}, not a dict")
    return dict(value)


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
    """Our network for one pickled record, every tensor mapped and checked (never a partial load).

    Names and shapes are compared with the config's (computed on the meta device) before our network is built
    or any tensor converted, so a mismatched file costs nothing but the walk.
    """
    got = _check_filters(_flatten(rec), name)
    own = expected_shapes(cfg, name)
    missing, unknown = sorted(set(own) - set(got)), sorted(set(got) - set(own))
    if missing:
        raise SnapshotImportError(f"{name}: tensors missing from the snapshot: {', '.join(missing[:5])}"
                                  f"{' ...' if len(missing) > 5 else ''}")
    if unknown:
        raise SnapshotImportError(f"{name}: unknown tensors in the snapshot: {', '.join(unknown[:5])}"
                                  f"{' ...' if len(unknown) > 5 else ''}")
    for k, v in got.items():
        if tuple(v.shape) != own[k]:
            raise SnapshotImportError(f"{name}.{k}: shape {tuple(v.shape)} in the snapshot, {own[k]} in our config")
    net: torch.nn.Module = Generator(cfg) if name.startswith("G") else Discriminator(cfg)
    net.load_state_dict({k: v.detach().to(torch.float32) for k, v in got.items()}, strict=True)
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
            keys = ", ".join(_show(k) for k in sorted(snap)[:8])
            raise SnapshotImportError(f"{pkl}: snapshot has no {name} network (keys: {keys})")
    g_rec = snap.get("G_ema") if isinstance(snap.get("G_ema"), PersistentRecord) else snap.get(nets[0])
    if not isinstance(g_rec, PersistentRecord) or g_rec.short_name != "Generator":
        raise SnapshotImportError(f"{pkl}: snapshot has no generator to read the configuration from")
    d_rec = snap.get("D") if isinstance(snap.get("D"), PersistentRecord) else None
    try:
        cfg = config_from_kwargs(g_rec.init_kwargs, d_rec.init_kwargs if d_rec else None)
    except KeyError as e:
        raise SnapshotImportError(f"{pkl}: cannot read the network configuration (no {e} argument)") from None
    except (TypeError, ValueError) as e:  # NetworkConfigError, UnsafePickleError and SnapshotImportError included
        raise SnapshotImportError(f"{pkl}: cannot read the network configuration ({e})") from None
    # Provenance first: it is cheap to refuse, and building the networks is not.
    aug = snap.get("augment_pipe")
    p = None
    if isinstance(aug, PersistentRecord):
        buffers = aug.state.get("_buffers")
        pt = buffers.get("p") if isinstance(buffers, dict) else None
        if torch.is_tensor(pt) and pt.numel() == 1 and pt.dtype in FLOAT_DTYPES:
            p = float(pt)
            p = p if np.isfinite(p) and 0 <= p <= 1 else None
    try:
        original_args = {k: plain_json(snap[k].init_kwargs, f"{k} arguments")
                         for k in NET_NAMES if isinstance(snap.get(k), PersistentRecord)}
    except (UnsafePickleError, SnapshotImportError) as e:
        raise SnapshotImportError(f"{pkl}: {e}") from None
    tsk = snap.get("training_set_kwargs")
    try:
        training_set_kwargs = plain_json(tsk, "training_set_kwargs") if isinstance(tsk, dict) else {}
    except SnapshotImportError as e:
        raise SnapshotImportError(f"{pkl}: {e}") from None
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
    provenance = {
        "imported_from": pkl.name,
        "source_sha256": sha256_file(pkl),
        "original_args": original_args,
        "training_set_kwargs": training_set_kwargs,
        "augment_p": p,
        "fp16_note": "num_fp16_res recorded; sneakergan computes float32 on CPU",
    }
    return cfg, built, provenance


def import_snapshot(pkl: str | Path, out: str | Path, nets: Iterable[str] = ("G_ema",)) -> Path:
    """Read a snapshot safely and write our model file. Nothing is written when anything fails.

    The model is written into a temporary folder beside `out` and moved into place (weights, then the JSON) only
    when complete; the folder, and any parent folder this call created, are removed on every failure.
    """
    cfg, built, provenance = read_snapshot(pkl, nets)
    state = {"augment_p": provenance["augment_p"]} if provenance["augment_p"] is not None else {}
    st_path, json_path = model_paths(out)
    created = _make_parents(st_path.parent)
    tmp_dir = None
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{st_path.stem}.import-", dir=st_path.parent))
        tmp_st = save_checkpoint(tmp_dir / st_path.stem, cfg, built, state=state, provenance=provenance)
        tmp_json = model_paths(tmp_st)[1]
        os.replace(tmp_st, st_path)
        os.replace(tmp_json, json_path)
    except OSError as e:
        _cleanup(tmp_dir, created)
        raise SnapshotImportError(f"{out}: cannot write the model ({e.strerror or e})") from None
    except BaseException:
        _cleanup(tmp_dir, created)
        raise
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return st_path


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (deepest last) so a failure can take them back."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _cleanup(tmp_dir: Path | None, created: list[Path]) -> None:
    if tmp_dir is not None:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    for folder in reversed(created):
        try:
            folder.rmdir()  # only if still empty: never anything that was there before
        except OSError:
            break


__all__ = ["import_snapshot", "read_snapshot", "config_from_kwargs", "SnapshotImportError", "UnsafePickleError"]
