"""Model files: bit-identical round trips, optimiser state, export, and one clear error for every bad file."""

import json

import pytest
import torch

from sneakergan.generate import seeds_to_z
from sneakergan.modelfile import ModelFileError, export_model, load_checkpoint, model_paths, save_checkpoint
from sneakergan.nets import Discriminator, Generator, NetworkConfig


def cfg(**kw):
    return NetworkConfig(z_dim=16, w_dim=16, resolution=16, mapping_layers=2, channel_base=256, channel_max=16,
                         mbstd_group=2, **kw)


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    c = cfg()
    G, D = Generator(c), Discriminator(c)
    G_ema = Generator(c)
    G_ema.load_state_dict(G.state_dict())
    opt = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
    G(torch.randn(2, 16)).square().mean().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "run" / "ckpt", c, {"G": G, "D": D, "G_ema": G_ema}, optimizers={"G": opt},
                           state={"kimg": 1.5, "augment_p": 0.2}, provenance={"dataset_sha256": "abc"})
    return path, c, G, D, G_ema, opt


def test_round_trip_is_bit_identical(saved):
    path, c, G, D, G_ema, opt = saved
    ck = load_checkpoint(path, nets=("G", "D", "G_ema"))
    z = seeds_to_z([0, 1], c.z_dim)
    with torch.no_grad():
        assert torch.equal(ck.nets["G_ema"](z, noise_mode="const"), G_ema.eval()(z, noise_mode="const"))
        img = G_ema(z, noise_mode="const")
        assert torch.equal(ck.nets["D"](img), D.eval()(img))
    assert ck.state == {"kimg": 1.5, "augment_p": 0.2}
    assert ck.provenance["dataset_sha256"] == "abc" and "saved_at" in ck.provenance
    assert ck.config == c


def test_optimizer_state_round_trip(saved):
    path, c, G, *_ , opt = saved
    ck = load_checkpoint(path, nets=("G",))
    opt2 = torch.optim.Adam(ck.nets["G"].parameters(), lr=5.0)
    ck.load_optimizer("G", opt2)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"] == 1e-3
    for k in a["state"]:
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(a["state"][k][key], b["state"][k][key])
    with pytest.raises(ModelFileError, match="no optimiser state"):
        ck.load_optimizer("D", opt2)


def test_any_path_form_works(saved):
    path = saved[0]
    st, js = model_paths(path)
    for p in (st, js, st.with_suffix("")):
        assert load_checkpoint(p).config == saved[1]


def test_export_strips_training_state_and_fp16_halves(saved, tmp_path):
    path, c, G, D, G_ema, _ = saved
    out32 = export_model(path, tmp_path / "serve32")
    out16 = export_model(path, tmp_path / "serve16", fp16=True)
    meta = json.loads(model_paths(out32)[1].read_text())
    assert meta["nets"] == ["G_ema"] and meta["optimizers"] == {}
    assert out16.stat().st_size < 0.6 * out32.stat().st_size
    z = seeds_to_z([3], c.z_dim)
    with torch.no_grad():
        ref = G_ema.eval()(z, noise_mode="const")
        assert torch.equal(load_checkpoint(out32).nets["G_ema"](z, noise_mode="const"), ref)
        assert torch.allclose(load_checkpoint(out16).nets["G_ema"](z, noise_mode="const"), ref, atol=2e-2)


def test_truncated_weights(saved):
    path = saved[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"ckpt\.safetensors.*truncated"):
        load_checkpoint(path)


def test_corrupt_weights_same_size(saved):
    path = saved[0]
    data = bytearray(path.read_bytes())
    data[10:20] = b"\xff" * 10
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        load_checkpoint(path)
    with pytest.raises(ModelFileError, match="corrupt"):
        load_checkpoint(path, verify=False)


def test_bad_json_and_missing_files(saved, tmp_path):
    path = saved[0]
    st, js = model_paths(path)
    js.write_text("{not json")
    with pytest.raises(ModelFileError, match=r"ckpt\.json: not valid JSON"):
        load_checkpoint(path)
    js.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelFileError, match="not a sneakergan model file"):
        load_checkpoint(path)
    with pytest.raises(ModelFileError, match="not found"):
        load_checkpoint(tmp_path / "nope")


def test_mismatched_config(saved):
    path = saved[0]
    st, js = model_paths(path)
    meta = json.loads(js.read_text())
    meta["config"]["channel_max"] = 32  # weights were saved for 16 channels
    js.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="shape"):
        load_checkpoint(path)
    meta["config"]["channel_max"] = 16
    meta["config"]["mapping_layers"] = 3
    js.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="does not match its config"):
        load_checkpoint(path)


def test_missing_network(saved, tmp_path):
    out = export_model(saved[0], tmp_path / "serve")
    with pytest.raises(ModelFileError, match="has no 'D' network"):
        load_checkpoint(out, nets=("D",))
