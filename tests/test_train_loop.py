"""Training loop end to end on tiny synthetic data: outputs, GAN dynamics, exact resume, SIGKILL, fine-tuning, torchrun."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sneakergan.cli import app
from sneakergan.modelfile import load_checkpoint
from sneakergan.nets import Discriminator, preset
from sneakergan.prepare.synth import write_synth_dataset
from sneakergan.train.config import TrainConfig, resolve_config
from sneakergan.train.loop import Trainer, enable_bf16, find_checkpoint, read_log
from sneakergan.train.loss import LossConfig, StyleGAN2Loss

ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data16(tmp_path_factory) -> Path:
    return write_synth_dataset(tmp_path_factory.mktemp("data") / "synth16.zip", 64, 16, seed=0)


def tiny_cfg(data: Path, out: Path, **kw) -> TrainConfig:
    # Every regulariser on (tiny turns path length and mixing off) so all phases run.
    flags = dict(data=str(data), out=str(out), preset="tiny", kimg=0.128, snap=0.064, tick=0.064, workers=0,
                 pl_weight=2.0, style_mix=0.9, aug="ada", p=0.2, ada_kimg=5.0, grid_size=4, threads=1, resolution=16)
    flags.update(kw)
    return resolve_config(flags)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def run_a(data16, tmp_path_factory):
    """An uninterrupted 0.128 kimg run, with a checkpoint halfway."""
    out = tmp_path_factory.mktemp("run_a")
    torch.manual_seed(123)
    init = Trainer(tiny_cfg(data16, out), progress=False)
    g0 = weights(init.G)
    init.run()
    return out, g0, init


def test_short_run_writes_checkpoint_grid_log_and_learns(run_a):
    out, g0, tr = run_a
    for name in ("checkpoint-latest.safetensors", "checkpoint-latest.json", "grid-latest.png", "grid-000000-064.png",
                 "grid-000000-128.png", "snapshot-000000-064.json", "log.jsonl"):
        assert (out / name).exists(), name
    rows = read_log(out)
    assert [r["cur_nimg"] for r in rows] == [64, 128]
    for key in ("loss_G", "loss_D", "D_real", "D_fake", "p", "sec_per_kimg", "kimg_per_s", "loss_r1", "loss_pl"):
        assert any(key in r for r in rows), key
    last = rows[-1]
    # GAN dynamics: D separates reals from fakes and its loss falls below chance (2 ln 2).
    assert last["D_real"] > last["D_fake"]
    assert last["loss_D"] < 2 * 0.6931
    assert all(torch.isfinite(torch.tensor([v for v in r.values() if isinstance(v, float)])).all() for r in rows)
    ckpt = load_checkpoint(out / "checkpoint-latest", nets=("G", "G_ema", "D"))
    assert ckpt.state["cur_nimg"] == 128 and ckpt.state["kimg"] == 0.128
    assert ckpt.state["train_config"]["pl_weight"] == 2.0 and ckpt.state["augment_p"] != 0.2  # ADA moved p
    changed = [k for k, v in ckpt.nets["G"].state_dict().items() if k in g0 and not torch.equal(v, g0[k])]
    assert len(changed) > 10
    ema, g = ckpt.nets["G_ema"].state_dict(), ckpt.nets["G"].state_dict()
    assert any(not torch.equal(ema[k], g[k]) for k in g)
    assert ckpt.has_optimizer("G") and ckpt.has_optimizer("D")


def test_resume_reproduces_the_uninterrupted_run(run_a, tmp_path):
    out, _, tr_a = run_a
    half = out / "snapshot-000000-064"
    flags = {"out": str(tmp_path), "resume": str(half)}
    base = TrainConfig.from_dict(load_checkpoint(half, nets=()).state["train_config"])
    tr = Trainer(resolve_config(flags, base), progress=False)
    assert tr.cur_nimg == 64 and tr.batch_idx == 4
    half_state = load_checkpoint(half, nets=()).state
    assert float(tr.augment.p) == pytest.approx(half_state["augment_p"])
    tr.run()
    assert [r["cur_nimg"] for r in read_log(tmp_path)] == [128]
    a = load_checkpoint(out / "checkpoint-latest", nets=("G", "D", "G_ema"))
    b = load_checkpoint(tmp_path / "checkpoint-latest", nets=("G", "D", "G_ema"))
    for name in ("G", "D", "G_ema"):
        sa, sb = a.nets[name].state_dict(), b.nets[name].state_dict()
        worst = max(float((sa[k] - sb[k]).abs().max()) for k in sa)
        assert worst < 1e-5, f"{name} differs after resume by {worst}"
    assert a.state["augment_p"] == pytest.approx(b.state["augment_p"])
    assert a.state["pl_mean"] == pytest.approx(b.state["pl_mean"], rel=1e-4)


def test_resume_with_a_fixed_p_uses_that_p_not_adas(run_a, tmp_path):
    # A run that let ADA climb can go on with a constant, lower p: `--aug fixed --p X` on the resume means X.
    out, _, _ = run_a
    half = out / "snapshot-000000-064"
    base = TrainConfig.from_dict(load_checkpoint(half, nets=()).state["train_config"])
    tr = Trainer(resolve_config({"out": str(tmp_path), "resume": str(half), "aug": "fixed", "p": 0.05}, base),
                 progress=False)
    assert tr.ada is None and float(tr.augment.p) == pytest.approx(0.05)
    assert load_checkpoint(half, nets=()).state["augment_p"] != pytest.approx(0.05)


def test_resume_with_a_new_lr_uses_it_and_keeps_the_moments(run_a, tmp_path):
    # Lowering the learning rate for a last leg: `--lr X` on the resume means X, with Adam's moments restored.
    out, _, _ = run_a
    half = out / "snapshot-000000-064"
    base = TrainConfig.from_dict(load_checkpoint(half, nets=()).state["train_config"])
    tr = Trainer(resolve_config({"out": str(tmp_path), "resume": str(half), "lr": base.lr / 4}, base), progress=False)
    for opt, reg in ((tr.opt_G, tr.g_reg), (tr.opt_D, tr.d_reg)):
        ratio = reg / (reg + 1) if reg else 1.0
        assert opt.param_groups[0]["lr"] == pytest.approx(base.lr / 4 * ratio)
        assert opt.param_groups[0]["betas"][1] == pytest.approx(0.99**ratio)
        assert any(float(s["exp_avg_sq"].abs().sum()) > 0 for s in opt.state.values())


def test_sigkill_mid_run_then_resume(data16, tmp_path):
    cmd = [sys.executable, "-m", "sneakergan.cli", "train", "--data", str(data16), "--out", str(tmp_path),
           "--preset", "tiny", "--resolution", "16", "--kimg", "50", "--snap", "0.032", "--tick", "0.032", "--workers", "1",
           "--no-progress", "--threads", "1"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and len(read_log(tmp_path)) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    ckpt_path = find_checkpoint(tmp_path)
    state = load_checkpoint(ckpt_path, nets=("G", "D", "G_ema")).state
    done = state["cur_nimg"]
    assert done >= 32
    r = subprocess.run([sys.executable, "-m", "sneakergan.cli", "train", "--out", str(tmp_path), "--resume",
                        str(tmp_path), "--kimg", str((done + 32) / 1000), "--no-progress", "--workers", "0"],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(tmp_path / "checkpoint-latest", nets=()).state["cur_nimg"] == done + 32
    nimgs = [row["cur_nimg"] for row in read_log(tmp_path)]
    assert nimgs == sorted(set(nimgs)) and nimgs[-1] == done + 32  # lines past the checkpoint were dropped


def test_finetune_with_freeze_d_and_resolution_mismatch(run_a, tmp_path):
    out, _, _ = run_a
    curated = write_synth_dataset(tmp_path / "curated.zip", 32, 16, seed=1)
    runner = CliRunner()
    res = runner.invoke(app, ["finetune", "--from", str(out / "checkpoint-latest.safetensors"), "--data", str(curated),
                              "--kimg", "0.032", "--out", str(tmp_path / "ft"), "--freeze-d", "1", "--no-progress",
                              "--workers", "0", "--snap", "0.032", "--tick", "0.032", "--threads", "1"], env=ENV)
    assert res.exit_code == 0, res.output
    src = load_checkpoint(out / "checkpoint-latest", nets=("D",)).nets["D"]
    ft = load_checkpoint(tmp_path / "ft" / "checkpoint-latest", nets=("D",))
    assert ft.state["cur_nimg"] == 32  # the kimg counter starts again for transfer learning
    assert ft.state["train_config"]["ada_kimg"] == 100.0 and ft.state["train_config"]["freeze_d"] == 1
    frozen = dict(src.blocks[0].named_parameters())
    for k, v in ft.nets["D"].blocks[0].named_parameters():
        assert torch.equal(v, frozen[k]), f"frozen block changed: {k}"
    moved = [k for k, v in ft.nets["D"].blocks[-1].named_parameters() if not torch.equal(v, dict(src.blocks[-1].named_parameters())[k])]
    assert moved
    big = write_synth_dataset(tmp_path / "big.zip", 4, 32, seed=2)
    res = runner.invoke(app, ["finetune", "--from", str(out / "checkpoint-latest"), "--data", str(big), "--kimg", "1",
                              "--out", str(tmp_path / "ft2"), "--no-progress", "--threads", "1"], env=ENV)
    assert res.exit_code == 2 and "cannot fine-tune a 16x16 model on 32x32 images" in res.output
    res = runner.invoke(app, ["plot", str(tmp_path / "ft"), "--out", str(tmp_path / "curves.png")])
    assert res.exit_code == 0 and (tmp_path / "curves.png").stat().st_size > 5000


def test_d_pair_batch_equals_separate_calls():
    cfg = dataclasses.replace(preset("tiny"), resolution=16, mbstd_group=4)
    torch.manual_seed(0)
    D = Discriminator(cfg)
    loss = StyleGAN2Loss(torch.nn.Linear(1, 1), D, None, LossConfig())
    real, fake = torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)
    r, f = loss.run_D_pair(real, fake, None, None)
    assert torch.allclose(r, D(real), atol=1e-5) and torch.allclose(f, D(fake), atol=1e-5)


def test_bf16_wrapper_keeps_float32_interfaces():
    from sneakergan.nets import Generator

    cfg = dataclasses.replace(preset("tiny"), resolution=16)
    torch.manual_seed(0)
    G = Generator(cfg)
    ref = G(torch.randn(2, cfg.z_dim, generator=torch.Generator().manual_seed(1)), noise_mode="const")
    enable_bf16(G.synthesis.blocks()[-2:], "cpu")
    out = G(torch.randn(2, cfg.z_dim, generator=torch.Generator().manual_seed(1)), noise_mode="const")
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert 0 < (out - ref).abs().max() < 0.1  # low precision, same function


def test_torchrun_two_processes_on_cpu(data16, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", "-m",
           "sneakergan.cli", "train", "--data", str(data16), "--out", str(tmp_path), "--preset", "tiny", "--resolution", "16", "--kimg",
           "0.032", "--snap", "0.032", "--tick", "0.032", "--workers", "0", "--no-progress"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [row["cur_nimg"] for row in read_log(tmp_path)] == [32]
    assert json.loads((tmp_path / "checkpoint-latest.json").read_text())["state"]["cur_nimg"] == 32


def test_conditional_inverted_and_non_square_runs(tmp_path):
    import numpy as np
    from PIL import Image

    labelled = write_synth_dataset(tmp_path / "lab.zip", 16, 16, seed=3, labels=True)
    tr = Trainer(tiny_cfg(labelled, tmp_path / "cond", cond=True, mirror=True, invert=True, augpipe="bgcfnc",
                          kimg=0.032, snap=0.032, tick=0.032), progress=False)
    assert tr.net_cfg.c_dim == 3 and tr.net_cfg.invert and len(tr.dataset) == 32
    tr.run()
    ckpt = load_checkpoint(tmp_path / "cond" / "checkpoint-latest", nets=("G_ema",))
    assert ckpt.config.c_dim == 3 and ckpt.config.invert
    folder = tmp_path / "tall"
    folder.mkdir()
    for i in range(16):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    tr = Trainer(tiny_cfg(folder, tmp_path / "tall-run", aug="fixed", p=0.5, kimg=0.032, snap=0.032, tick=0.032),
                 progress=False)
    assert (tr.net_cfg.img_width, tr.net_cfg.img_height, tr.net_cfg.aspect) == (12, 16, (3, 4))
    tr.run()
    assert load_checkpoint(tmp_path / "tall-run" / "checkpoint-latest", nets=()).state["augment_p"] == 0.5


def test_finetune_from_an_imported_reference_snapshot(tmp_path):
    from sneakergan.interop.nvlabs import import_snapshot

    pkl = Path(__file__).parent / "fixtures" / "nvlabs" / "nvlabs-tiny.pkl"
    if not pkl.exists():
        pytest.skip("reference snapshot fixture not present")
    ref = import_snapshot(pkl, tmp_path / "ref", nets=("G", "D", "G_ema"))
    data = write_synth_dataset(tmp_path / "s32.zip", 32, 32, seed=5)
    res = CliRunner().invoke(app, ["finetune", "--from", str(ref), "--data", str(data), "--kimg", "0.032", "--out",
                                   str(tmp_path / "ft"), "--freeze-d", "2", "--batch", "16", "--no-progress",
                                   "--workers", "0", "--snap", "0.032", "--tick", "0.032", "--threads", "1"], env=ENV)
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(tmp_path / "ft" / "checkpoint-latest", nets=("G_ema",))
    assert ckpt.state["cur_nimg"] == 32 and ckpt.provenance["transfer_from"] == str(ref)
    # A G_ema-only model (exported for serving) cannot be fine-tuned: it has no discriminator.
    import_snapshot(pkl, tmp_path / "g_only", nets=("G_ema",))
    res = CliRunner().invoke(app, ["finetune", "--from", str(tmp_path / "g_only"), "--data", str(data), "--kimg", "1",
                                   "--out", str(tmp_path / "ft3"), "--no-progress", "--threads", "1"], env=ENV)
    assert res.exit_code == 2 and "has no discriminator" in res.output


def test_metrics_during_training_are_logged_and_plotted(data16, tmp_path):
    """`train --metrics` evaluates at every snapshot and `plot` draws it (random-tiny features run offline)."""
    cfg = tiny_cfg(data16, tmp_path, pl_weight=0.0, style_mix=0.0, aug="none", metrics=["kid50k_full"],
                   metrics_num=16, metrics_extractor="random-tiny")
    Trainer(cfg, progress=False).run()
    rows = [r for r in read_log(tmp_path) if "metrics" in r]
    assert [r["cur_nimg"] for r in rows] == [64, 128]
    assert all(math.isfinite(r["metrics"]["kid50k_full"]) for r in rows)
    res = CliRunner().invoke(app, ["plot", str(tmp_path), "--out", str(tmp_path / "curves.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "curves.png").stat().st_size > 10_000
