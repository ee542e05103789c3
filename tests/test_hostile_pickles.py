"""Hostile snapshot pickles: each is one UnsafePickleError / SnapshotImportError line, in bounded time and memory,
and nothing is written (no model file, no temp file, no folder). The corpus is written here, in the reference's
layout (persistent records, EasyDict kwargs, plain-pickled tensors), plus hand-assembled opcodes where Python's
own pickler would refuse (a 100,000-deep module chain).
"""

from __future__ import annotations

import collections
import pickle
import struct
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from hostile import assert_one_line_errors, run_corpus, snapshot_tree  # noqa: E402

from sneakergan.cli import app  # noqa: E402
from sneakergan.interop import nvlabs  # noqa: E402
from sneakergan.interop.nvlabs import SnapshotImportError, import_snapshot  # noqa: E402
from sneakergan.modelfile import load_checkpoint  # noqa: E402
from sneakergan.nets import Generator, NetworkConfig  # noqa: E402

CFG = NetworkConfig(z_dim=16, w_dim=16, resolution=16, mapping_layers=2, channel_base=256, channel_max=16,
                    mbstd_group=2)
G_KWARGS = dict(z_dim=16, w_dim=16, c_dim=0, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
                synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=0, conv_clamp=256))
RECONSTRUCT = "torch_utils.persistence"


class _Persistent:
    """Pickles like a reference persistent object; `build` adds a third reduce element (a BUILD opcode)."""

    def __init__(self, meta, build=None):
        self.meta, self.build = meta, build

    def __reduce__(self):
        fn = sys.modules[RECONSTRUCT]._reconstruct_persistent_obj
        return (fn, (self.meta,)) if self.build is None else (fn, (self.meta,), self.build)


class _Tensor:
    """A tensor pickled through torch._utils._rebuild_tensor_v2 with any size/stride (and optional BUILD)."""

    def __init__(self, storage, size, stride, offset=0, build=None):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
        self.build = build

    def __reduce__(self):
        fn = torch._utils._rebuild_tensor_v2
        return (fn, self.args) if self.build is None else (fn, self.args, self.build)


def _easy(d):
    return sys.modules["dnnlib.util"].EasyDict(
        {k: _easy(v) if isinstance(v, dict) else v for k, v in d.items()})


def _record(module, class_name, init_kwargs=None, params=None, modules=None, build=None, class_name_raw=None):
    buffers = collections.OrderedDict((k, v) for k, v in module._buffers.items()
                                      if k not in module._non_persistent_buffers_set)
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters) if params is None else params,
        "_buffers": buffers,
        "_modules": collections.OrderedDict((k, _record(m, type(m).__name__)) for k, m in module._modules.items())
        if modules is None else modules,
        "_init_args": (),
        "_init_kwargs": _easy(init_kwargs or {}),
    }
    name = f"training.networks.{class_name}" if class_name_raw is None else class_name_raw
    return _Persistent({"type": "class", "version": 4, "module_src": "# omitted", "class_name": name,
                        "module_name": "training.networks", "state": state}, build=build)


@pytest.fixture(scope="module")
def reference_modules():
    """Stand-ins for the reference's modules, only so that pickle can name their globals while writing."""
    persistence, util = types.ModuleType(RECONSTRUCT), types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("never called while importing")

    _reconstruct_persistent_obj.__module__ = RECONSTRUCT
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    with pytest.MonkeyPatch.context() as mp:
        for name, mod in (("torch_utils", types.ModuleType("torch_utils")), (RECONSTRUCT, persistence),
                          ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):
            mp.setitem(sys.modules, name, mod)
        yield


def _g_record(G, kwargs=None, **kw):
    return _record(G, "Generator", G_KWARGS if kwargs is None else kwargs, **kw)


def _deep_chain_pickle(depth: int) -> bytes:
    """{"G_ema": record(record(... depth ...))} assembled from opcodes: Python's pickler recurses and would fail."""
    def s(text: str) -> bytes:
        raw = text.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    glob = b"c" + RECONSTRUCT.encode() + b"\n_reconstruct_persistent_obj\n"
    head = glob + b"}(" + s("type") + s("class") + s("class_name") + s("training.networks.Generator") + s("state")
    kwargs = pickle.dumps(G_KWARGS, protocol=2)[2:-1]  # a plain-dict fragment: PROTO and STOP stripped
    top = head + b"}(" + s("_init_kwargs") + kwargs + s("_modules") + b"}(" + s("m")
    level = head + b"}(" + s("_modules") + b"}(" + s("m")
    leaf = glob + b"}(" + s("type") + s("class") + s("class_name") + s("training.networks.Leaf") + b"u\x85R"
    close = b"uuu\x85R"
    return (b"\x80\x02}(" + s("G_ema") + top + level * (depth - 1) + leaf + close * depth + b"u.")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, reference_modules):
    root = tmp_path_factory.mktemp("hostile-pickles")
    torch.manual_seed(0)
    G = Generator(CFG).eval()
    cases: dict[str, str] = {}

    def write(name: str, message: str, obj=None, raw: bytes | None = None) -> None:
        (root / f"{name}.pkl").write_bytes(raw if raw is not None else pickle.dumps(obj, protocol=4))
        cases[name] = message

    write("good", None, {"G_ema": _g_record(G)})
    cases.pop("good")
    # A memo "billion laughs": 10^13 list references from 13 pickled lists (hung at 6.9 GB before).
    lol: list = ["lol"] * 10
    for _ in range(12):
        lol = [lol] * 10
    write("billion_laughs_kwargs", "more than 20,000 values", {"G_ema": _g_record(G, {**G_KWARGS, "x": lol})})
    write("billion_laughs_training_set", "more than 20,000 values",
          {"G_ema": _g_record(G), "training_set_kwargs": {"path": lol}})
    # The same trick on the module tree: each level holds the next one twice.
    node = _record(torch.nn.Module(), "Leaf")
    for _ in range(14):
        node = _record(torch.nn.Module(), "Node", modules={"a": node, "b": node})
    g_modules = collections.OrderedDict((k, _record(m, type(m).__name__)) for k, m in G._modules.items())
    write("billion_laughs_modules", "more than 5000 modules",
          {"G_ema": _g_record(G, modules={**g_modules, "x": node})})
    write("deep_chain", "nest deeper than 16 levels", raw=_deep_chain_pickle(100_000))
    with warnings.catch_warnings():  # TypedStorage is what plain pickle writes, deprecated or not
        warnings.simplefilter("ignore", UserWarning)
        one, four = torch.zeros(1).storage(), torch.zeros(4).storage()
    params = collections.OrderedDict(G._parameters)
    write("stride0_huge", "over the limit",
          {"G_ema": _g_record(G, params={**params, "x": _Tensor(one, [1 << 30], [0])})})
    write("stride0", "contiguous tensors only",
          {"G_ema": _g_record(G, params={**params, "x": _Tensor(one, [1 << 27], [0])})})
    write("past_storage", "does not fit its storage",
          {"G_ema": _g_record(G, params={**params, "x": _Tensor(one, [1 << 20], [1])})})
    write("build_tensor", "not a contiguous view",  # BUILD re-points a checked tensor at a stride-0 view
          {"G_ema": _g_record(G, params={**params, "x": _Tensor(four, [4], [1],
                                                                build=(one, 0, (1 << 27,), (0,)))})})
    write("build_list_state", "may not be modified", {"G_ema": _g_record(G, build=[1, 2, 3])})
    write("mixed_keys", "top-level keys are not all strings", {1: "x", "G_ema": _g_record(G)})
    write("negative_w_dim", "w_dim = -5", {"G_ema": _g_record(G, {**G_KWARGS, "w_dim": -5})})
    write("fractional_width", "channel_max must be an integer",
          {"G_ema": _g_record(G, {**G_KWARGS, "synthesis_kwargs": {**G_KWARGS["synthesis_kwargs"],
                                                                   "channel_max": 15.5}})})
    write("huge_mapping", "mapping_layers = 10000000",
          {"G_ema": _g_record(G, {**G_KWARGS, "mapping_kwargs": {"num_layers": 10**7}})})
    write("kwargs_not_dict", "mapping_kwargs is a list", {"G_ema": _g_record(G, {**G_KWARGS, "mapping_kwargs": [1]})})
    write("int_tensor", "dense float tensors",
          {"G_ema": _g_record(G, params={**params, "x": torch.zeros(3, dtype=torch.int64)})})
    write("class_name_list", "malformed class name", {"G_ema": _g_record(G, class_name_raw=["Generator"])})
    write("params_list", "_parameters is a list", {"G_ema": _g_record(G, params=[1, 2])})
    write("dotted_name", "malformed name", {"G_ema": _g_record(G, params={**params, "a.b": torch.zeros(1)})})
    deep: list = []
    for _ in range(50):
        deep = [deep]
    write("deep_kwargs", "nests deeper than 16 levels", {"G_ema": _g_record(G, {**G_KWARGS, "x": deep})})
    write("long_string", "a string of 20,000 characters",
          {"G_ema": _g_record(G), "training_set_kwargs": {"path": "x" * 20_000}})
    write("unknown_tensor", "unknown tensors", {"G_ema": _g_record(G, params={**params, "x": torch.zeros(1)})})
    return root, cases


def test_hostile_pickles_are_one_line_errors_in_bounded_time_and_memory(corpus):
    root, cases = corpus
    before = snapshot_tree(root)
    result = run_corpus("sneakergan.interop.nvlabs:import_snapshot",
                        {name: [str(root / f"{name}.pkl"), str(root / "out" / name / "model")] for name in cases},
                        warmup=[str(root / "good.pkl"), str(root / "good-out" / "model")])
    for name in cases:
        assert {"UnsafePickleError", "SnapshotImportError"} & set(result["cases"][name]["mro"]), result["cases"][name]
        assert "UserError" in result["cases"][name]["mro"]
    assert_one_line_errors(result, cases, "UserError", max_seconds=10)
    assert result["peak_mb"] - result["base_mb"] < 300, result  # the stride-0 view allocated 4.3 GB before
    after = snapshot_tree(root)
    assert {k: v for k, v in after.items() if not k.startswith("good-out")} == before, "nothing may be written"
    assert not (root / "out").exists()
    load_checkpoint(root / "good-out" / "model")  # the warm-up import is a valid model


def test_cli_prints_one_line_for_a_hostile_pickle(corpus, tmp_path):
    root, _ = corpus
    for name in ("billion_laughs_kwargs", "stride0", "mixed_keys"):
        r = CliRunner().invoke(app, ["import", str(root / f"{name}.pkl"), "--out", str(tmp_path / "o" / "m")])
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert not (tmp_path / "o").exists()


def test_a_failed_write_leaves_no_model_no_temp_file_and_no_folder(corpus, tmp_path, monkeypatch):
    root, _ = corpus
    real = nvlabs.save_checkpoint

    def save_then_fail(*a, **kw):
        real(*a, **kw)  # both halves exist in the temp folder when the "disk fills up"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nvlabs, "save_checkpoint", save_then_fail)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "other.txt").write_text("was here before")
    for out in (tmp_path / "new" / "deeper" / "model", tmp_path / "keep" / "model"):
        with pytest.raises(SnapshotImportError, match="No space left on device"):
            import_snapshot(root / "good.pkl", out)
    assert snapshot_tree(tmp_path) == {"keep/other.txt": snapshot_tree(tmp_path)["keep/other.txt"]}
    assert not (tmp_path / "new").exists()
