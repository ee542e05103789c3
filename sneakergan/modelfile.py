"""Model files: `NAME.safetensors` (weights, optimiser moments) + `NAME.json` (config, training state, provenance).

Never pickle: loading reads tensors and JSON only. This module owns every error about model files, so a truncated,
corrupt or mismatched file always gives one `ModelFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import UserError
from .fileio import atomic_write, sha256_file
from .nets import Discriminator, Generator, NetworkConfig

FORMAT = "sneakergan-model/1"
NET_CLASSES = {"G": Generator, "G_ema": Generator, "D": Discriminator}
TENSOR_PREFIXES = ("G.", "G_ema.", "D.", "opt_G.", "opt_D.")
MAX_JSON_BYTES = 64 << 20        # a model's JSON is a few KB; provenance may carry the reference's arguments
MAX_HEADER_BYTES = 100 << 20     # safetensors' own limit on its JSON header
# Bytes per element of the safetensors dtypes a model may hold: networks are floating point, optimiser state
# may add integer step counts.
NET_DTYPES = {"F32": 4, "F16": 2, "BF16": 2}
OPT_DTYPES = {**NET_DTYPES, "F64": 8, "I64": 8, "I32": 4}


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
        try:
            for key, t in self._tensors.items():
                if key.startswith(prefix):
                    idx, sub = key[len(prefix):].split(".", 1)
                    sd["state"].setdefault(int(idx), {})[sub] = t
            for key, val in info.get("scalars", {}).items():
                idx, sub = key.split(".", 1)
                sd["state"].setdefault(int(idx), {})[sub] = val
            opt.load_state_dict(sd)
        except (ValueError, KeyError, RuntimeError, TypeError, AttributeError) as e:
            raise ModelFileError(f"{self.path}: optimiser state {name!r} does not fit the networks ({e})") from None


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON half of a model file, validated."""
    st_path, json_path = model_paths(path)
    if not json_path.exists():
        raise ModelFileError(f"{json_path}: model config not found (a model is NAME.safetensors + NAME.json)")
    try:
        size = json_path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ModelFileError(f"{json_path}: {size} bytes is far too large for a model config "
                                 f"(limit {MAX_JSON_BYTES >> 20} MiB)")
        text = json_path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{json_path}: not valid JSON ({e})") from None
    except OSError as e:
        raise ModelFileError(f"{json_path}: cannot read ({e.strerror or e})") from None
    try:
        meta = json.loads(text)
    except ValueError as e:  # JSONDecodeError, and integers of more than 4,300 digits
        raise ModelFileError(f"{json_path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ModelFileError(f"{json_path}: not valid JSON (nested too deeply)") from None
    except OSError as e:
        raise ModelFileError(f"{json_path}: cannot read ({e.strerror or e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFileError(f"{json_path}: not a sneakergan model file (format {_short(fmt)}, expected {FORMAT!r})")
    _check_meta(meta, json_path)
    return meta


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _check_meta(meta: dict[str, Any], json_path: Path) -> None:
    """The types every reader of the JSON relies on; one ModelFileError naming the first wrong field."""
    for key, kind in (("config", dict), ("nets", list), ("state", dict), ("provenance", dict),
                      ("optimizers", dict), ("weights", dict)):
        if key in meta and not isinstance(meta[key], kind):
            raise ModelFileError(f"{json_path}: '{key}' must be a JSON {'object' if kind is dict else 'array'}, "
                                 f"got {_short(meta[key])}")
    nets = meta.get("nets", [])
    if any(not isinstance(n, str) or n not in NET_CLASSES for n in nets) or len(set(nets)) != len(nets):
        raise ModelFileError(f"{json_path}: 'nets' must list distinct names from {list(NET_CLASSES)}, got "
                             f"{[_short(n) for n in nets[:5]]}")
    weights = meta.get("weights", {})
    size = weights.get("bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ModelFileError(f"{json_path}: weights 'bytes' must be a non-negative integer, got {_short(size)}")
    sha = weights.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64):
        raise ModelFileError(f"{json_path}: weights 'sha256' must be 64 hex digits, got {_short(sha)}")
    for key in ("kimg", "cur_nimg", "augment_p"):
        v = meta.get("state", {}).get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf")):
            raise ModelFileError(f"{json_path}: state '{key}' must be a non-negative number, got {_short(v)}")
    for name, info in meta.get("optimizers", {}).items():
        if name not in ("G", "D") or not isinstance(info, dict) or not isinstance(info.get("param_groups"), list) \
                or not isinstance(info.get("scalars", {}), dict):
            raise ModelFileError(f"{json_path}: optimiser entry {_short(name)} is malformed")


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a safetensors file's header, checked against the file's size.

    Reads only the header (never the tensors), so a hostile file costs its header's size at most.
    """
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little")
            raw = f.read(n) if len(head) == 8 and n <= min(MAX_HEADER_BYTES, file_size - 8) else None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(head) < 8:
        raise ModelFileError(f"{path}: corrupt weights file (shorter than a safetensors header)")
    if raw is None:
        raise ModelFileError(f"{path}: corrupt weights file (header of {n} bytes in a file of {file_size})")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ModelFileError(f"{path}: corrupt weights file (its header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: corrupt weights file (header is not a JSON object)")
    data_size = file_size - 8 - n
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise ModelFileError(f"{path}: corrupt weights file (entry {_short(name)} is not an object)")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in OPT_DTYPES:
            raise ModelFileError(f"{path}: tensor {_short(name)} has dtype {_short(dtype)}; a model holds "
                                 f"{', '.join(OPT_DTYPES)} only")
        if not (isinstance(shape, list) and len(shape) <= 8
                and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 40 for d in shape)):
            raise ModelFileError(f"{path}: tensor {_short(name)} has a malformed shape {_short(shape)}")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_size
                and offsets[1] - offsets[0] == math.prod(shape) * OPT_DTYPES[dtype]):
            raise ModelFileError(f"{path}: tensor {_short(name)}: its data offsets do not fit its shape and the "
                                 f"file's size (truncated or corrupt)")
        out[name] = (dtype, tuple(shape))
    return out


def expected_shapes(config: NetworkConfig, name: str) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of network `name` for `config`, built on the meta device (no memory)."""
    with torch.device("meta"):
        net = NET_CLASSES[name](config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _check_names(st_path: Path, name: str, own, got) -> None:
    """The tensor names a network needs (`own`) are exactly those the file holds for it (`got`)."""
    missing = sorted(set(own) - set(got))
    unexpected = sorted(set(got) - set(own))
    if missing or unexpected:
        raise ModelFileError(f"{st_path}: {name} does not match its config "
                             f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                             f"unexpected {[_short(k) for k in unexpected[:3]]}"
                             f"{'...' if len(unexpected) > 3 else ''})")


def _check_header(header: dict[str, tuple[str, tuple[int, ...]]], config: NetworkConfig, nets: Iterable[str],
                  st_path: Path) -> None:
    """Names, dtypes and shapes of the requested networks' tensors match the config (before loading any)."""
    strays = [k for k in header if not k.startswith(TENSOR_PREFIXES)]
    if strays:
        raise ModelFileError(f"{st_path}: unknown tensors {[_short(k) for k in strays[:3]]} (names must start "
                             f"with {', '.join(TENSOR_PREFIXES)})")
    for name in nets:
        own = expected_shapes(config, name)
        prefix = f"{name}."
        got = {k[len(prefix):]: v for k, v in header.items() if k.startswith(prefix)}
        _check_names(st_path, name, own, got)
        for k, (dtype, shape) in got.items():
            if dtype not in NET_DTYPES:
                raise ModelFileError(f"{st_path}: {name}.{k} is {dtype}; network tensors are "
                                     f"{', '.join(NET_DTYPES)}")
            if shape != own[k]:
                raise ModelFileError(f"{st_path}: {name}.{k} has shape {shape}, config needs {own[k]}")


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
    config = config_of(meta, json_path)
    nets = list(nets)
    for name in nets:
        if name not in meta.get("nets", []):
            raise ModelFileError(f"{st_path}: has no {name!r} network (has {meta.get('nets')})")
    _check_header(read_safetensors_header(st_path), config, nets, st_path)
    try:
        tensors = load_file(str(st_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{st_path}: corrupt weights file ({e})") from None
    built: dict[str, torch.nn.Module] = {}
    for name in nets:
        net = NET_CLASSES[name](config)
        _load_state(net, name, tensors, st_path)
        built[name] = net.to(device).eval().requires_grad_(False)
    return Checkpoint(path=st_path, config=config, nets=built, state=meta.get("state", {}),
                      provenance=meta.get("provenance", {}), meta=meta, _tensors=tensors)


def config_of(meta: dict[str, Any], json_path: Path | str = "model") -> NetworkConfig:
    """The validated NetworkConfig of a model's JSON (exact types, bounds, parameter count) or ModelFileError."""
    if "config" not in meta:
        raise ModelFileError(f"{json_path}: has no network config")
    try:
        return NetworkConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{json_path}: bad network config ({e})") from None


def _load_state(net: torch.nn.Module, name: str, tensors: dict[str, torch.Tensor], st_path: Path) -> None:
    prefix = f"{name}."
    own = net.state_dict()
    got = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    _check_names(st_path, name, own, got)
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
