"""`sneakergan generate` / `export` / `presets` from the command line."""

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sneakergan.cli import app
from sneakergan.generate import parse_seeds, resolve_device, seed_to_z
from sneakergan.modelfile import save_checkpoint
from sneakergan.nets import Generator, NetworkConfig

runner = CliRunner()


@pytest.fixture()
def model(tmp_path):
    torch.manual_seed(0)
    cfg = NetworkConfig(z_dim=16, w_dim=16, resolution=16, mapping_layers=2, channel_base=256, channel_max=16)
    return save_checkpoint(tmp_path / "m", cfg, {"G_ema": Generator(cfg)})


def test_generate_writes_pngs_and_grid(model, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["generate", "--checkpoint", str(model), "--seeds", "0-2,7", "--psi", "0.7",
                            "--out", str(out), "--grid"])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["grid.png", "seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
    im = Image.open(out / "seed0007.png")
    assert im.size == (16, 16) and im.mode == "RGB"
    grid = Image.open(out / "grid.png")
    assert grid.size[0] > 2 * 16


@pytest.mark.parametrize("precision,max_diff", [("fp32", 1), ("bf16", 8)])
def test_generate_same_seed_same_image_any_batch(model, tmp_path, precision, max_diff):
    # fp32: the same image to rounding; bf16: oneDNN's kernels round differently per batch size, a few levels at most.
    for b in ("1", "3"):
        r = runner.invoke(app, ["generate", "--checkpoint", str(model), "--seeds", "4-6", "--out", str(tmp_path / b),
                                "--batch", b, "--precision", precision])
        assert r.exit_code == 0, r.output
    a = np.asarray(Image.open(tmp_path / "1" / "seed0005.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "3" / "seed0005.png")).astype(int)
    assert np.abs(a - b).max() <= max_diff
    assert np.abs(a - b).mean() < 1


@pytest.mark.parametrize("args,message", [
    (["--seeds", "5-1"], "backwards"),
    (["--seeds", "abc"], "cannot read seeds"),
    (["--noise-mode", "loud"], "noise-mode"),
    (["--class", "1"], "unconditional"),
])
def test_generate_bad_input_one_line_error(model, tmp_path, args, message):
    r = runner.invoke(app, ["generate", "--checkpoint", str(model), "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output


def test_generate_missing_model(tmp_path):
    r = runner.invoke(app, ["generate", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "not found" in r.output


def test_export_and_presets(model, tmp_path):
    r = runner.invoke(app, ["export", "--model", str(model), "--out", str(tmp_path / "e"), "--fp16"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "e.safetensors").exists() and (tmp_path / "e.json").exists()
    r = runner.invoke(app, ["presets"])
    assert r.exit_code == 0 and "24,767,458" in r.output


def test_seed_convention_and_parsing():
    np.testing.assert_array_equal(seed_to_z(42, 8), np.random.RandomState(42).randn(1, 8))
    assert parse_seeds("0-3, 9") == [0, 1, 2, 3, 9]
    with pytest.raises(ValueError):
        parse_seeds(str(2**32))
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def test_precision_choice(model, tmp_path):
    from sneakergan.generate import use_bf16
    from sneakergan.precision import cpu_has_native_bf16

    assert use_bf16("auto", torch.device("cpu")) == cpu_has_native_bf16()  # bf16 where the CPU has bf16 units
    assert use_bf16("bf16", torch.device("cpu")) and not use_bf16("fp32", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision"):
        use_bf16("fp8", torch.device("cpu"))
    for p in ("fp32", "bf16"):
        r = runner.invoke(app, ["generate", "--checkpoint", str(model), "--seeds", "3", "--out", str(tmp_path / p),
                                "--precision", p])
        assert r.exit_code == 0, r.output
    a = np.asarray(Image.open(tmp_path / "fp32" / "seed0003.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "bf16" / "seed0003.png")).astype(int)
    assert np.abs(a - b).mean() < 6  # bf16 keeps 8 mantissa bits: close, not equal
    r = runner.invoke(app, ["generate", "--checkpoint", str(model), "--out", str(tmp_path), "--precision", "fp8"])
    assert r.exit_code == 2 and "precision" in r.output
