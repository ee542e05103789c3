"""Model files: `NAME.safetensors` (weights, optimiser moments) + `NAME.json` (config, training state, provenance).

Never pickle: loading reads tensors and JSON only. This module owns every error about model files, so a truncated,
corrupt or mismatched file always gives one `ModelFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .fileio import atomic_write, sha256_file
from .nets import Discriminator, Generator, NetworkConfig
from .errors import UserError

FORMAT = "sneakergan-model/1"
NET_CLASSES = {"G": Generator, "G_ema": Generator, "D": Discriminator}


class ModelFileError(UserError):
    """A model file is missing, truncated, corrupt, or does not match its config."""


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, json) paths for a model given as NAME.safetensors, NAME.json or NAME."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{prefix}.state.{idx}.{key}"] = val.detach().cpu().contiguous().clone()
            else:
                scalars[f"{idx}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_checkpoint(path: str | Path, config: NetworkConfig, nets: dict[str, torch.nn.Module],
                    optimizers: dict[str, torch.optim.Optimizer] | None = None, state: dict[str, Any] | None = None,
                    provenance: dict[str, Any] | None = None, fp16: bool = False) -> Path:
    """Write the model atomically (weights first, then the JSON that points at them). Returns the weights path."""
    st_path, json_path = model_paths(path)
    tensors: dict[str, torch.Tensor] = {}
    for name, net in nets.items():
        if name not in NET_CLASSES:
            raise ModelFileError(f"{st_path}: unknown network name {name!r} (expected one of {list(NET_CLASSES)})")
        for key, val in net.state_dict().items():
            t = val.detach().cpu().contiguous().clone()
            if fp16 and t.is_floating_point():
                t = t.to(torch.float16)
            tensors[f"{name}.{key}"] = t
    opt_meta = {}
    for name, opt in (optimizers or {}).items():
        t, meta = _optimizer_tensors(f"opt_{name}", opt)
        tensors.update(t)
        opt_meta[name] = meta
    atomic_write(st_path, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT}), fsync=True)
    meta = {
        "format": FORMAT,
        "config": config.to_dict(),
        "nets": sorted(nets),
        "dtype": "float16" if fp16 else "float32",
        "optimizers": opt_meta,
        "state": state or {},
        "provenance": {"saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       **(provenance or {})},
        "weights": {"file": st_path.name, "sha256": sha256_file(st_path), "bytes": st_path.stat().st_size},
    }
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1, default=_json_default)),
                 fsync=True)
    return st_path


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@dataclass
class Checkpoint:
    """A loaded model file."""

    path: Path
    config: NetworkConfig
    nets: dict[str, torch.nn.Module]
    state: dict[str, Any]
    provenance: dict[str, Any]
    meta: dict[str, Any]
    _tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def has_optimizer(self, name: str) -> bool:
        return name in self.meta.get("optimizers", {})

    def load_optimizer(self, name: str, opt: torch.optim.Optimizer) -> None:
        """Restore an optimiser's state (moments and step counts) saved under `opt_{name}`."""
        info = self.meta.get("optimizers", {}).get(name)
        if info is None:
            raise ModelFileError(f"{self.path}: holds no optimiser state for {name!r} (exported for serving?)")
        sd: dict[str, Any] = {"state": {}, "param_groups": info["param_groups"]}
        prefix = f"opt_{name}.state."
        for key, t in self._tensors.items():
            if key.startswith(prefix):
                idx, sub = key[len(prefix):].split(".", 1)
                sd["state"].setdefault(int(idx), {})[sub] = t
        for key, val in info.get("scalars", {}).items():
            idx, sub = key.split(".", 1)
            sd["state"].setdefault(int(idx), {})[sub] = val
        try:
            opt.load_state_dict(sd)
        except (ValueError, KeyError, RuntimeError) as e:
            raise ModelFileError(f"{self.path}: optimiser state {name!r} does not fit the networks ({e})") from None


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON half of a model file, validated."""
    st_path, json_path = model_paths(path)
    if not json_path.exists():
        raise ModelFileError(f"{json_path}: model config not found (a model is NAME.safetensors + NAME.json)")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{json_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{json_path}: not a sneakergan model file (format {meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r})")
    return meta


def load_checkpoint(path: str | Path, nets: Iterable[str] = ("G_ema",), device: str | torch.device = "cpu",
                    verify: bool = True) -> Checkpoint:
    """Load a model file and rebuild the requested networks (float32, eval mode)."""
    st_path, json_path = model_paths(path)
    meta = read_meta(path)
    if not st_path.exists():
        raise ModelFileError(f"{st_path}: weights file not found")
    expected = meta.get("weights", {})
    if expected.get("bytes") is not None and st_path.stat().st_size != expected["bytes"]:
        raise ModelFileError(f"{st_path}: truncated or replaced ({st_path.stat().st_size} bytes, config says {expected['bytes']})")
    if verify and expected.get("sha256") and sha256_file(st_path) != expected["sha256"]:
        raise ModelFileError(f"{st_path}: weights do not match {json_path.name} (sha256 differs): mismatched or corrupt file")
    try:
        config = NetworkConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{json_path}: bad network config ({e})") from None
    try:
        tensors = load_file(str(st_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{st_path}: corrupt weights file ({e})") from None
    built: dict[str, torch.nn.Module] = {}
    for name in nets:
        if name not in meta.get("nets", []):
            raise ModelFileError(f"{st_path}: has no {name!r} network (has {meta.get('nets')})")
        net = NET_CLASSES[name](config)
        _load_state(net, name, tensors, st_path)
        built[name] = net.to(device).eval().requires_grad_(False)
    return Checkpoint(path=st_path, config=config, nets=built, state=meta.get("state", {}),
                      provenance=meta.get("provenance", {}), meta=meta, _tensors=tensors)


def _load_state(net: torch.nn.Module, name: str, tensors: dict[str, torch.Tensor], st_path: Path) -> None:
    prefix = f"{name}."
    own = net.state_dict()
    got = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(got))
    unexpected = sorted(set(got) - set(own))
    if missing or unexpected:
        raise ModelFileError(f"{st_path}: {name} does not match its config "
                             f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                             f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})")
    for k, v in got.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelFileError(f"{st_path}: {name}.{k} has shape {tuple(v.shape)}, config needs {tuple(own[k].shape)}")
    net.load_state_dict({k: v.to(own[k].dtype) for k, v in got.items()}, strict=True)


def refuse_overwrite(dst: str | Path, force: bool = False) -> None:
    """Raise ModelFileError when a model file already exists at `dst` and `force` is not set.

    Writing a model is never silent about what it replaces: an old model may be served, have a gallery and
    named directions beside it.
    """
    existing = [p for p in model_paths(dst) if p.exists()]
    if existing and not force:
        raise ModelFileError(f"{existing[0]} exists: not replacing a model without --force")


def export_model(src: str | Path, dst: str | Path, fp16: bool = False, overwrite: bool = False) -> Path:
    """Strip a training checkpoint to G_ema for serving (optionally float16 to halve the file).

    Refuses to replace an existing model at `dst` unless `overwrite`; directions computed on the old weights are
    then stale (their file records the weights' sha256) and are ignored until recomputed. Class names of a
    conditional model (`prepare --labels`) are copied into the provenance, so the exported file stands alone.
    """
    refuse_overwrite(dst, overwrite)
    ckpt = load_checkpoint(src, nets=("G_ema",))
    state = {k: v for k, v in ckpt.state.items() if k in ("kimg", "augment_p", "cur_nimg")}
    prov = {**ckpt.provenance, "exported_from": str(ckpt.path)}
    if ckpt.config.c_dim and "class_names" not in prov:
        from .labels import model_class_names

        names = model_class_names(ckpt.meta)
        if names:
            prov["class_names"] = names
    return save_checkpoint(dst, ckpt.config, {"G_ema": ckpt.nets["G_ema"]}, state=state, provenance=prov, fp16=fp16)
