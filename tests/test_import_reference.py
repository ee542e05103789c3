"""`sneakergan import`: the reference's own outputs reproduced, conditional round trip, hostile files refused.

tests/fixtures/nvlabs/ is a genuine StyleGAN2-ADA snapshot (perturbed weights, so every tensor matters) plus the
reference implementation's outputs for it (see its README). If a test here fails, fix the network, not the test.
"""

import collections
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sneakergan.cli import app
from sneakergan.generate import seeds_to_z
from sneakergan.interop.nvlabs import SnapshotImportError, import_snapshot, read_snapshot
from sneakergan.interop.safe_unpickle import UnsafePickleError
from sneakergan.modelfile import load_checkpoint
from sneakergan.nets import Discriminator, Generator, NetworkConfig

FIXTURE = Path(__file__).parent / "fixtures" / "nvlabs"
PKL = FIXTURE / "nvlabs-tiny.pkl"
runner = CliRunner()


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(FIXTURE / "nvlabs-tiny.expected.npz"))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("imp") / "tiny"
    import_snapshot(PKL, out, nets=("G", "D", "G_ema"))
    ck = load_checkpoint(out, nets=("G_ema", "D", "G"))
    return out, ck


def maxdiff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def test_config_rebuilt_from_pickled_arguments(imported):
    _, ck = imported
    c = ck.config
    assert (c.z_dim, c.w_dim, c.c_dim, c.resolution, c.mapping_layers) == (64, 64, 0, 32, 2)
    assert (c.channel_base, c.channel_max, c.conv_clamp, c.mbstd_group, c.num_fp16_res) == (2048, 64, 256.0, 4, 4)
    prov = ck.provenance
    assert prov["augment_p"] == pytest.approx(0.23)
    assert len(prov["source_sha256"]) == 64 and prov["original_args"]["G_ema"]["z_dim"] == 64
    assert ck.state["augment_p"] == pytest.approx(0.23)


def test_reproduces_every_reference_array(imported, expected):
    _, ck = imported
    G, D = ck.nets["G_ema"], ck.nets["D"]
    z = seeds_to_z(expected["seeds"].tolist(), 64)
    assert maxdiff(z, expected["z"]) < 1e-6
    with torch.no_grad():
        ws = G.mapping(z)
        assert maxdiff(ws, expected["ws"]) <= 1e-4
        ws_ref = torch.from_numpy(expected["ws"])
        for fused in (False, True):
            assert maxdiff(G.synthesis(ws_ref, noise_mode="const", fused=fused), expected["img_psi1"]) <= 1e-3
        assert maxdiff(G(z, psi=0.7, noise_mode="const"), expected["img_psi07"]) <= 1e-3
        ws05 = G.mapping(z, psi=0.5, cutoff=2)
        assert maxdiff(ws05, expected["ws_psi05_cutoff2"]) <= 1e-4
        assert maxdiff(G.synthesis(ws05, noise_mode="const"), expected["img_psi05_cutoff2"]) <= 1e-3
        mixed = torch.cat([ws_ref[:, :4], ws_ref.flip(0)[:, 4:]], dim=1)
        assert maxdiff(G.synthesis(mixed, noise_mode="const"), expected["img_mix_coarse4"]) <= 1e-3
        assert maxdiff(G.synthesis(ws_ref, noise_mode="none"), expected["img_noise_none"]) <= 1e-3
        logits = D(torch.from_numpy(expected["img_psi1"]))
        assert maxdiff(logits, expected["d_logits_img_psi1"]) <= 1e-3


def test_generate_cli_matches_reference_pngs(imported, expected, tmp_path):
    out, _ = imported
    r = runner.invoke(app, ["generate", "--checkpoint", str(out), "--seeds", "0-3", "--psi", "1",
                            "--noise-mode", "const", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    ref = (np.clip(expected["img_psi1"], -1, 1) * 127.5 + 128).clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    for i in range(4):
        ours = np.asarray(Image.open(tmp_path / f"seed{i:04d}.png")).astype(int)
        assert np.abs(ours - ref[i].astype(int)).max() <= 1


# --- a conditional model of our own, written as a pickle of the reference's structure -------------------------

class _Persistent:
    """Pickles like the reference's persistent classes: GLOBAL torch_utils.persistence._reconstruct_persistent_obj."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,))


def _record(module: torch.nn.Module, class_name: str, init_kwargs=None):
    easy = sys.modules["dnnlib.util"].EasyDict
    buffers = collections.OrderedDict((k, v) for k, v in module._buffers.items()
                                      if k not in module._non_persistent_buffers_set)
    if hasattr(module, "resample_filter"):  # the reference stores its 2-D filter as a buffer
        f = module.resample_filter
        buffers["resample_filter"] = torch.outer(f, f)
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters),
        "_buffers": buffers,
        "_modules": collections.OrderedDict((k, _record(m, type(m).__name__)) for k, m in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": easy(init_kwargs or {}),
    }
    return _Persistent({"type": "class", "version": 4, "module_src": "# source omitted", "class_name":
                        f"training.networks.{class_name}", "module_name": "training.networks", "state": state})


@pytest.fixture()
def fake_reference_modules(monkeypatch):
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # only used while writing
        raise AssertionError("must never be called while importing")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    for name, mod in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                      ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)):
        monkeypatch.setitem(sys.modules, name, mod)
    return util.EasyDict


def test_conditional_model_round_trips_through_reference_layout(tmp_path, fake_reference_modules):
    easy = fake_reference_modules
    torch.manual_seed(3)
    cfg = NetworkConfig(z_dim=32, w_dim=32, c_dim=4, resolution=16, mapping_layers=2, channel_base=512,
                        channel_max=32, mbstd_group=2)
    G, D = Generator(cfg).eval(), Discriminator(cfg).eval()
    with torch.no_grad():
        for p in list(G.parameters()) + list(D.parameters()):
            p.add_(torch.randn_like(p) * 0.1)  # every tensor matters
        G.mapping.w_avg.normal_()
    g_kwargs = easy(z_dim=32, w_dim=32, c_dim=4, img_resolution=16, img_channels=3,
                    mapping_kwargs=easy(num_layers=2),
                    synthesis_kwargs=easy(channel_base=512, channel_max=32, num_fp16_res=2, conv_clamp=256))
    d_kwargs = easy(c_dim=4, img_resolution=16, img_channels=3, architecture="resnet", channel_base=512,
                    channel_max=32, num_fp16_res=2, conv_clamp=256, cmap_dim=None, block_kwargs=easy(),
                    mapping_kwargs=easy(), epilogue_kwargs=easy(mbstd_group_size=2))
    snap = {"training_set_kwargs": easy(path="x.zip", use_labels=True), "G": _record(G, "Generator", g_kwargs),
            "D": _record(D, "Discriminator", d_kwargs), "G_ema": _record(G, "Generator", g_kwargs)}
    pkl = tmp_path / "network-snapshot-000100.pkl"
    pkl.write_bytes(pickle.dumps(snap, protocol=4))

    out = tmp_path / "cond"
    r = runner.invoke(app, ["import", str(pkl), "--out", str(out), "--nets", "G,D,G_ema"])
    assert r.exit_code == 0, r.output
    ck = load_checkpoint(out, nets=("G_ema", "D"))
    assert ck.config.c_dim == 4
    z = seeds_to_z([0, 1], 32)
    c = torch.eye(4)[[1, 3]]
    with torch.no_grad():
        torch.testing.assert_close(ck.nets["G_ema"](z, c, psi=0.6, noise_mode="const"), G(z, c, psi=0.6, noise_mode="const"))
        img = G(z, c, noise_mode="const")
        torch.testing.assert_close(ck.nets["D"](img, c), D(img, c))
    r = runner.invoke(app, ["generate", "--checkpoint", str(out), "--seeds", "0-1", "--class", "2",
                            "--out", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["generate", "--checkpoint", str(out), "--seeds", "0", "--out", str(tmp_path / "g")])
    assert r.exit_code == 2 and "--class" in r.output


# --- hostile and broken files ----------------------------------------------------------------------------------

class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def _assert_refused(tmp_path, data: bytes, message: str):
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(data)
    out = tmp_path / "out" / "model"
    with pytest.raises((UnsafePickleError, SnapshotImportError), match=message):
        import_snapshot(pkl, out)
    r = runner.invoke(app, ["import", str(pkl), "--out", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert message.split(".")[0].replace("\\", "") in r.output.replace("\n", "") or "error" in r.output
    assert not (tmp_path / "out").exists(), "nothing may be written for a refused file"


def test_os_system_payload_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"G_ema": _Evil(os.system, f"touch {marker}")}, protocol=4)
    _assert_refused(tmp_path, payload, r"refuses global '(posix|os|nt)\.system'")
    assert not marker.exists()


def test_eval_payload_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').write('x')"
    payload = pickle.dumps({"training_set_kwargs": _Evil(eval, code)}, protocol=2)
    _assert_refused(tmp_path, payload, r"refuses global '(__builtin__|builtins)\.eval'")
    assert not marker.exists()


def test_truncated_empty_and_foreign_files_refused(tmp_path):
    data = PKL.read_bytes()
    _assert_refused(tmp_path, data[: len(data) // 3], "truncated or corrupt")
    _assert_refused(tmp_path, b"", "empty file")
    _assert_refused(tmp_path, pickle.dumps([1, 2, 3]), "top level is list")
    _assert_refused(tmp_path, b"PK\x03\x04 this is a zip, not a pickle", "truncated or corrupt")


def test_snapshot_missing_g_ema_refused(tmp_path):
    snap = {"training_set_kwargs": {"path": "x"}, "augment_pipe": None}
    _assert_refused(tmp_path, pickle.dumps(snap, protocol=4), "no G_ema network")


def test_unknown_network_name_refused():
    with pytest.raises(SnapshotImportError, match="unknown network"):
        read_snapshot(PKL, nets=("G_avg",))
