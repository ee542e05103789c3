"""Hostile model files: crafted JSON configs and safetensors headers give one ModelFileError line each, in bounded
time and memory, and nothing is written. The corpus is built here from a valid tiny model.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import struct
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from hostile import assert_one_line_errors, run_corpus, snapshot_tree  # noqa: E402

from sneakergan.errors import UserError  # noqa: E402
from sneakergan.modelfile import ModelFileError, model_paths, save_checkpoint  # noqa: E402
from sneakergan.nets import PRESETS, Discriminator, Generator, NetworkConfig  # noqa: E402
from sneakergan.nets.config import MAX_PARAMETERS, NetworkConfigError, estimate_parameters  # noqa: E402

CFG = NetworkConfig(z_dim=16, w_dim=16, resolution=16, mapping_layers=2, channel_base=256, channel_max=16,
                    mbstd_group=2)


def _count(net: torch.nn.Module) -> int:
    return sum(v.numel() for v in net.state_dict().values())


@pytest.mark.parametrize("cfg", [p.network for n, p in PRESETS.items() if n in ("tiny", "demo64", "cifar")] + [
    NetworkConfig(z_dim=32, w_dim=48, c_dim=5, resolution=32, aspect=(4, 3), mapping_layers=3, channel_base=1024,
                  channel_max=64, mbstd_channels=2, d_mapping_layers=2, cmap_dim=20, img_channels=1),
    NetworkConfig(z_dim=8, w_dim=24, c_dim=3, resolution=16, aspect=(1, 2), mapping_layers=1, channel_base=512,
                  channel_max=32, mbstd_channels=0, d_architecture="orig")])
def test_parameter_estimate_equals_the_built_networks(cfg):
    est = estimate_parameters(cfg)
    with torch.device("meta"):  # shapes only: nothing allocated
        assert est == {"G": _count(Generator(cfg)), "D": _count(Discriminator(cfg))}


def test_every_preset_is_within_the_limit_and_the_limit_is_enforced():
    for p in PRESETS.values():
        assert sum(estimate_parameters(p.network).values()) < MAX_PARAMETERS / 4
    with pytest.raises(NetworkConfigError, match="parameters"):
        NetworkConfig(resolution=1024, channel_base=1 << 20, channel_max=4096)
    assert issubclass(NetworkConfigError, UserError)


@pytest.mark.parametrize("change, message", [
    ({"w_dim": -5}, "w_dim = -5 is out of range"),
    ({"z_dim": 3.5}, "z_dim must be an integer"),
    ({"channel_max": 64.0}, "channel_max must be an integer"),
    ({"channel_base": 0}, "channel_base = 0 is out of range"),
    ({"channel_base": 8}, "channel_base 8 must be at least the resolution"),
    ({"conv_clamp": "256"}, "conv_clamp must be a number"),
    ({"conv_clamp": float("nan")}, "conv_clamp"),
    ({"mapping_layers": 10**7}, "mapping_layers = 10000000 is out of range"),
    ({"w_dim": True}, "w_dim must be an integer"),
    ({"resolution": 48}, "power of two"),
    ({"aspect": (4, 0)}, "aspect = 0 is out of range"),
    ({"aspect": "4:3"}, "aspect must be two integers"),
    ({"aspect": (5, 3)}, "integer 4-pixel base"),
    ({"d_architecture": ["resnet"]}, "d_architecture"),
    ({"invert": "yes"}, "invert must be true or false"),
    ({"cmap_dim": 0}, "cmap_dim = 0"),
    ({"w_avg_beta": 2}, "w_avg_beta = 2 is out of range"),
    ({"mbstd_group": -1}, "mbstd_group = -1"),
])
def test_strict_validator_rejects(change, message):
    with pytest.raises(NetworkConfigError, match=message.replace("(", r"\(")):
        dataclasses.replace(CFG, **change)


def test_validator_normalises_numpy_and_json_values():
    import numpy as np

    c = dataclasses.replace(CFG, z_dim=np.int64(16), aspect=[np.int64(1), 1], conv_clamp=256)
    assert type(c.z_dim) is int and c.aspect == (1, 1) and type(c.conv_clamp) is float
    assert NetworkConfig.from_dict(json.loads(json.dumps(CFG.to_dict()))) == CFG


# --- the corpus ---------------------------------------------------------------------------------------------------

def _write_json(stem: Path, meta: dict) -> None:
    model_paths(stem)[1].write_text(json.dumps(meta))


def _raw_safetensors(path: Path, header: dict | bytes, data: bytes = b"", length: int | None = None) -> None:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-models")
    torch.manual_seed(0)
    good = root / "good"
    save_checkpoint(good, CFG, {"G_ema": Generator(CFG)})
    good_st, good_js = model_paths(good)
    meta = json.loads(good_js.read_text())
    weights = good_st.read_bytes()
    header_len = struct.unpack("<Q", weights[:8])[0]
    header = json.loads(weights[8:8 + header_len])
    data = weights[8 + header_len:]
    cases: dict[str, str] = {}

    def model(name: str, message: str, config_change: dict | None = None, meta_change: dict | None = None,
              st_bytes: bytes | None = None, json_text: str | None = None) -> None:
        stem = root / name
        st, js = model_paths(stem)
        st.write_bytes(weights if st_bytes is None else st_bytes)
        m = copy.deepcopy(meta)
        if config_change:
            m["config"].update(config_change)
        if meta_change:
            m.update(meta_change)
        # The attacker controls both halves: keep the recorded size and hash consistent with the crafted weights.
        m["weights"] = {"file": st.name, "sha256": hashlib.sha256(st.read_bytes()).hexdigest(),
                        "bytes": st.stat().st_size}
        js.write_text(json_text if json_text is not None else json.dumps(m))
        cases[name] = message

    # crafted configs (the tracebacks and huge allocations)
    model("neg_width", "w_dim = -5", {"w_dim": -5})
    model("frac_width", "channel_max must be an integer", {"channel_max": 15.5})
    model("zero_base", "channel_base = 0", {"channel_base": 0})
    model("str_clamp", "conv_clamp must be a number", {"conv_clamp": "256"})
    model("huge_mapping", "mapping_layers = 10000000", {"mapping_layers": 10**7})
    model("huge_params", "parameters", {"resolution": 1024, "channel_base": 1 << 20, "channel_max": 4096})
    model("bool_dim", "z_dim must be an integer", {"z_dim": True})
    model("list_aspect", "aspect", {"aspect": [[1], [1]]})
    model("unknown_key", "unknown network config keys", {"exec": "import os"})
    model("config_list", "'config' must be a JSON object", meta_change={"config": [1, 2]})
    model("nets_bad", "'nets' must list", meta_change={"nets": ["G_ema", {"x": 1}]})
    model("state_str", "state 'kimg'", meta_change={"state": {"kimg": "lots"}})
    model("format", "not a sneakergan model file", meta_change={"format": "pickle"})
    model("deep_json", "nested too deeply", json_text="[" * 100_000 + "]" * 100_000)
    model("not_json", "not valid JSON", json_text="{'config': }")
    model("huge_int", "not valid JSON", json_text='{"format": ' + "9" * 5000 + "}")
    model("json_list", "not a sneakergan model file", json_text="[1, 2, 3]")
    # crafted safetensors headers
    hdr = lambda h: struct.pack("<Q", len(json.dumps(h))) + json.dumps(h).encode()  # noqa: E731
    model("header_len_huge", "header of", st_bytes=struct.pack("<Q", 1 << 62) + b"{}" + data)
    model("header_short", "shorter than a safetensors header", st_bytes=b"\x01\x02")
    model("header_not_json", "not valid JSON", st_bytes=struct.pack("<Q", 5) + b"{{{{{" + data)
    model("header_deep", "not valid JSON", st_bytes=struct.pack("<Q", 20_000) + b"[" * 10_000 + b"]" * 10_000 + data)
    big = dict(header)
    k0 = next(k for k in header if k != "__metadata__")
    big[k0] = {**header[k0], "shape": [1 << 30, 1 << 5]}
    model("shape_vs_offsets", "data offsets do not fit", st_bytes=hdr(big) + data)
    past = dict(header)
    past[k0] = {**header[k0], "shape": [1], "data_offsets": [len(data), len(data) + 4]}
    model("offsets_past_end", "data offsets do not fit", st_bytes=hdr(past) + data)
    odd = dict(header)
    odd[k0] = {**header[k0], "dtype": "U8"}
    model("dtype_unknown", "dtype 'U8'", st_bytes=hdr(odd) + data)
    stray = dict(header)
    stray["evil.payload"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    model("stray_tensor", "unknown tensors", st_bytes=hdr(stray) + data)
    missing = {k: v for k, v in header.items() if k != k0}
    model("missing_tensor", "does not match its config", st_bytes=hdr(missing) + data)
    # A shape that the offsets agree with but the config does not: the same bytes, reinterpreted.
    t = header[k0]
    n = (t["data_offsets"][1] - t["data_offsets"][0]) // 4
    reshaped = dict(header)
    reshaped[k0] = {**t, "shape": [n]} if len(t["shape"]) != 1 else {**t, "shape": [1, n]}
    model("wrong_shape", "config needs", st_bytes=hdr(reshaped) + data)
    ints = dict(header)
    ints[k0] = {**t, "dtype": "I32"}
    model("int_weights", "network tensors are", st_bytes=hdr(ints) + data)
    return root, cases


def test_hostile_model_files_are_one_line_errors_in_bounded_time_and_memory(corpus):
    root, cases = corpus
    before = snapshot_tree(root)
    result = run_corpus("sneakergan.modelfile:load_checkpoint",
                        {name: [str(root / name)] for name in cases}, warmup=[str(root / "good")])
    assert_one_line_errors(result, cases, "ModelFileError", max_seconds=5)
    assert all("UserError" in r["mro"] for r in result["cases"].values())
    assert result["peak_mb"] - result["base_mb"] < 150, result  # 10^7 mapping layers took 11.2 GB before
    assert snapshot_tree(root) == before, "loading must write nothing"


def test_valid_model_still_loads_after_the_checks(corpus):
    from sneakergan.modelfile import load_checkpoint, read_safetensors_header

    root, _ = corpus
    ck = load_checkpoint(root / "good")
    assert ck.config == CFG
    header = read_safetensors_header(model_paths(root / "good")[0])
    assert {k[len("G_ema."):] for k in header} == set(ck.nets["G_ema"].state_dict())
    with pytest.raises(ModelFileError, match="has no 'D' network"):
        load_checkpoint(root / "good", nets=("D",))


# --- fuzz: any JSON value in any config field, any header --------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                               max_size=3), max_leaves=6)
_fields = [f.name for f in dataclasses.fields(NetworkConfig)]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_fields + ["bogus"]), _json | st.integers(0, 4096), max_size=6))
def test_fuzzed_configs_are_valid_or_one_config_error(change):
    try:
        cfg = NetworkConfig.from_dict({**CFG.to_dict(), **change})
    except NetworkConfigError as e:
        assert "\n" not in str(e)
        return
    assert sum(estimate_parameters(cfg).values()) <= MAX_PARAMETERS  # whatever passes is buildable


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _json, max_size=4), st.binary(max_size=64))
def test_fuzzed_safetensors_headers_are_read_or_one_model_file_error(tmp_path_factory, header, data):
    from sneakergan.modelfile import read_safetensors_header

    path = tmp_path_factory.mktemp("fuzz", numbered=True) / "w.safetensors"
    _raw_safetensors(path, header, data)
    try:
        read_safetensors_header(path)
    except ModelFileError as e:
        assert "\n" not in str(e)
