"""A restricted unpickler for the reference's `network-snapshot-*.pkl` files.

It executes nothing from the file: only a fixed allow-list of globals resolves, each to a function of ours (or a
vetted torch/numpy function that only builds data). The persistence hook the reference embeds
(`torch_utils.persistence._reconstruct_persistent_obj`) becomes a plain `PersistentRecord` (class name + state);
the module source stored beside it is never compiled. Storages are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from ..errors import UserError


class UnsafePickleError(UserError):
    """The file asks for something outside the allow-list, or is not a readable snapshot."""


@dataclass
class PersistentRecord:
    """What a reference persistent object (network module, augment pipe, ...) was: its class name and state."""

    class_name: str
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return dict(self.state.get("_init_kwargs") or {})

    @property
    def short_name(self) -> str:
        return self.class_name.rsplit(".", 1)[-1]


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a plain dict (attribute access is not needed to read data)."""


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or "class_name" not in meta:
        raise UnsafePickleError("malformed persistent-object record")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise UnsafePickleError(f"persistent object {meta['class_name']} has a non-dict state")
    return PersistentRecord(class_name=str(meta["class_name"]), state=state)


def _load_storage_bytes(data: bytes) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("storage payload is not bytes")
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("numpy scalar with a non-plain dtype")
    return np.frombuffer(data or b"", dtype=dtype, count=1)[0] if data is not None else dtype.type()


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # files written with numpy < 2
    ("numpy", "dtype"): np.dtype,
    ("dnnlib.util", "EasyDict"): EasyDict,
}

ALLOWED_GLOBALS: tuple[str, ...] = tuple(f"{m}.{n}" for m, n in _ALLOWED)


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` whose `find_class` resolves only the allow-list above."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refuses global '{module}.{name}' (not on the allow-list of a StyleGAN2-ADA snapshot)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: unexpected persistent id in pickle")


def load_snapshot_pickle(path: str | Path) -> dict[str, Any]:
    """Read a reference snapshot pickle safely; returns its top-level dict (networks as PersistentRecord)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UnsafePickleError(f"{path}: cannot read ({e.strerror})") from None
    if not data:
        raise UnsafePickleError(f"{path}: empty file")
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), str(path)).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, MemoryError) as e:
        raise UnsafePickleError(f"{path}: not a readable snapshot pickle (truncated or corrupt: {e})") from None
    if not isinstance(obj, dict):
        raise UnsafePickleError(f"{path}: not a StyleGAN2-ADA snapshot (top level is {type(obj).__name__}, not dict)")
    return obj
