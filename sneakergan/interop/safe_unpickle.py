"""A restricted unpickler for the reference's `network-snapshot-*.pkl` files.

It executes nothing from the file: only a fixed allow-list of globals resolves, each to a function of ours (or a
vetted torch/numpy function that only builds data). The persistence hook the reference embeds
(`torch_utils.persistence._reconstruct_persistent_obj`) becomes a plain `PersistentRecord` (class name + state);
the module source stored beside it is never compiled. Storages are read with `torch.load(weights_only=True)`.

Resources are bounded too: tensors are rebuilt only as contiguous views that fit inside their storage (a stride-0
view of one float claiming 2^30 elements is refused, not expanded later), objects are never rebuilt through
BUILD, and top-level keys must be strings. Walking what was read (module trees, keyword arguments) is the
importer's job and is done iteratively with depth and size limits there.
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

MAX_TENSOR_ELEMENTS = 1 << 28  # 1 GiB of float32: four times the largest tensor of a 1024 px StyleGAN2
MAX_TENSOR_DIMS = 8
MAX_NAME_CHARS = 200


class UnsafePickleError(UserError):
    """The file asks for something outside the allow-list, or is not a readable snapshot."""


@dataclass
class PersistentRecord:
    """What a reference persistent object (network module, augment pipe, ...) was: its class name and state."""

    class_name: str
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        kw = self.state.get("_init_kwargs") or {}
        if not isinstance(kw, dict):
            raise UnsafePickleError(f"persistent object {self.class_name} has non-dict constructor arguments")
        return dict(kw)

    def __setstate__(self, state: Any) -> None:
        # The reference rebuilds persistent objects in one call; a BUILD on one is a crafted file.
        raise UnsafePickleError("a persistent-object record may not be modified by the pickle (BUILD)")

    @property
    def short_name(self) -> str:
        return self.class_name.rsplit(".", 1)[-1]


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a plain dict (attribute access is not needed to read data)."""

    def __setstate__(self, state: Any) -> None:
        if state:  # the reference pickles EasyDicts as NEWOBJ + SETITEMS, with no instance state
            raise UnsafePickleError("an EasyDict may not carry instance state (BUILD)")


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or "class_name" not in meta:
        raise UnsafePickleError("malformed persistent-object record")
    name = meta["class_name"]
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise UnsafePickleError("persistent-object record with a malformed class name")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise UnsafePickleError(f"persistent object {name} has a non-dict state")
    return PersistentRecord(class_name=name, state=state)


def _contiguous_strides(size: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(size):
        strides.append(step)
        step *= max(d, 1)
    return tuple(reversed(strides))


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """`torch._utils._rebuild_tensor_v2`, but only for a contiguous view that lies inside its storage.

    Checked before the view exists, so no later copy can expand a small storage into gigabytes.
    """
    if not isinstance(storage, torch.TypedStorage):
        raise UnsafePickleError("tensor rebuilt from something that is not a storage")
    if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) and len(size) == len(stride)
            and len(size) <= MAX_TENSOR_DIMS):
        raise UnsafePickleError("tensor with a malformed shape or stride")
    ints = (*size, *stride, storage_offset)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in ints):
        raise UnsafePickleError("tensor shape, stride and offset must be non-negative integers")
    numel = 1
    for d in size:
        numel *= d
    if numel > MAX_TENSOR_ELEMENTS:
        raise UnsafePickleError(f"tensor of {numel:,} elements is over the limit of {MAX_TENSOR_ELEMENTS:,}")
    if numel and tuple(stride) != _contiguous_strides(tuple(size)):
        raise UnsafePickleError(f"tensor of shape {tuple(size)} has strides {tuple(stride)}: snapshots hold "
                                "contiguous tensors only (a stride-0 view would expand one value)")
    itemsize = torch.empty((), dtype=storage.dtype).element_size()  # TypedStorage.size() is deprecated
    capacity = storage._untyped_storage.nbytes() // itemsize
    if storage_offset + numel > capacity:
        raise UnsafePickleError(f"tensor of {numel:,} elements does not fit its storage of {capacity:,}")
    if backward_hooks:
        raise UnsafePickleError("tensor with backward hooks")
    t = torch.empty((0,), dtype=storage.dtype)
    return t.set_(storage._untyped_storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.Tensor:
    """`torch._utils._rebuild_parameter` for reading: the tensor itself (gradients are not needed)."""
    if not torch.is_tensor(data) or backward_hooks:
        raise UnsafePickleError("parameter rebuilt from something that is not a plain tensor")
    return data


def _load_storage_bytes(data: bytes) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("storage payload is not bytes")
    storage = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    if not isinstance(storage, torch.TypedStorage):
        raise UnsafePickleError("storage payload is not a tensor storage")
    return storage


def _numpy_scalar(dtype: np.dtype, data: bytes | None = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("numpy scalar with a non-plain dtype")
    return np.frombuffer(data or b"", dtype=dtype, count=1)[0] if data is not None else dtype.type()


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
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
    except UnsafePickleError as e:
        raise UnsafePickleError(e.args[0] if e.args[0].startswith(str(path)) else f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, MemoryError, RecursionError, OverflowError) as e:
        reason = " ".join(str(e).split())[:200]
        raise UnsafePickleError(f"{path}: not a readable snapshot pickle (truncated or corrupt: {reason})") from None
    if not isinstance(obj, dict):
        raise UnsafePickleError(f"{path}: not a StyleGAN2-ADA snapshot (top level is {type(obj).__name__}, not dict)")
    if not all(isinstance(k, str) for k in obj):
        raise UnsafePickleError(f"{path}: not a StyleGAN2-ADA snapshot (its top-level keys are not all strings)")
    return obj
