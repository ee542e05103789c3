"""Training runs a person can trust: run folders that are never written over, one config, early one-line errors,
progress in a pipe, metrics that come back after a resume, a resume that reads its checkpoint once, plots."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sneakergan.cli import app
from sneakergan.errors import UserError
from sneakergan.modelfile import load_checkpoint
from sneakergan.prepare.synth import write_synth_dataset
from sneakergan.train import loop as loop_mod
from sneakergan.train.config import ConfigError, TrainConfig, knobs, resolve_config
from sneakergan.train.loop import Trainer
from sneakergan.train.progress import tick_line
from sneakergan.train.rundir import RunDir, RunDirError, numbered_path, read_log
from sneakergan.train.stats import TickStats

ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--preset", "tiny", "--resolution", "16", "--workers", "0", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def data16(tmp_path_factory) -> Path:
    return write_synth_dataset(tmp_path_factory.mktemp("data") / "synth16.zip", 32, 16, seed=0)


def cfg16(data: Path, out: Path, **kw) -> TrainConfig:
    flags = dict(data=str(data), out=str(out), preset="tiny", resolution=16, kimg=0.064, snap=0.032, tick=0.032,
                 workers=0, grid_size=4, threads=1, aug="ada", p=0.1, ada_kimg=5.0)
    flags.update(kw)
    return resolve_config(flags)


@pytest.fixture(scope="module")
def run64(data16, tmp_path_factory) -> Path:
    """A finished 64-image run with snapshots at 32 and 64."""
    out = tmp_path_factory.mktemp("runs") / "r64"
    Trainer(cfg16(data16, out), progress=False).run()
    return out


def tree_digest(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under folder: sha256 and mtime (ns)."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


@pytest.fixture
def no_step(monkeypatch):
    """Fail loudly if a training step runs: the errors under test must come before the first one."""
    def boom(*a, **k):
        raise AssertionError("a training step ran before the error")

    monkeypatch.setattr(loop_mod.Trainer, "_step", boom)


# -- the run folder ---------------------------------------------------------------------------------------


def test_run_folder_holds_reals_grids_checkpoints_and_log(run64):
    names = {p.name for p in run64.iterdir()}
    for name in ("reals.png", "grid-000000-032.png", "grid-000000-064.png", "grid-latest.png", "log.jsonl",
                 "snapshot-000000-032.json", "snapshot-000000-064.safetensors", "checkpoint-latest.json"):
        assert name in names, name
    assert not [n for n in names if n.endswith(".tmp")]
    assert [r["cur_nimg"] for r in read_log(run64)] == [32, 64]


def test_training_into_an_existing_run_without_resume_changes_nothing(run64, data16, no_step):
    before = tree_digest(run64)
    res = CliRunner().invoke(app, ["train", "--data", str(data16), "--out", str(run64), "--kimg", "0.032", *TINY])
    assert res.exit_code == 2
    line = one_line_error(res.output)
    assert "already holds a training run" in line and "--resume" in line
    with pytest.raises(RunDirError):
        Trainer(cfg16(data16, run64), progress=False)
    assert tree_digest(run64) == before  # every byte, and no file touched


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(data16, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("out of memory (simulated)")

    tr = Trainer(cfg16(data16, tmp_path / "r"), progress=False)
    monkeypatch.setattr(tr, "_step", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        tr.run()
    assert not (tmp_path / "r").exists()  # the same --out can be used again
    Trainer(cfg16(data16, tmp_path / "r", kimg=0.032), progress=False).run()
    assert (tmp_path / "r" / "checkpoint-latest.json").exists()


def test_outdir_numbers_runs_like_the_reference_tools(data16, tmp_path):
    parent = tmp_path / "runs"
    assert numbered_path(parent, "synth16-tiny").name == "00000-synth16-tiny"
    (parent / "00007-old").mkdir(parents=True)
    (parent / "notes").mkdir()
    assert numbered_path(parent, "a b/c").name == "00008-a-b-c"
    res = CliRunner().invoke(app, ["train", "--data", str(data16), "--outdir", str(parent), "--kimg", "0.016",
                                   "--tick", "0.016", "--snap", "0.016", *TINY], env=ENV)
    assert res.exit_code == 0, res.output
    run = parent / "00008-synth16-tiny"
    assert (run / "checkpoint-latest.json").exists() and (run / "reals.png").exists()
    res = CliRunner().invoke(app, ["train", "--data", str(data16), "--outdir", str(parent), "--out", str(tmp_path / "x"),
                                   "--kimg", "1", *TINY])
    assert res.exit_code == 2 and "not both" in one_line_error(res.output)


def test_resume_removes_stale_temp_files_and_refuses_to_overwrite_later_snapshots(run64, tmp_path, no_step):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(run64, run)
    stale = [run / ".snapshot-000000-096.safetensors.k3j2.tmp", run / ".log.jsonl.x.tmp"]
    for p in stale:
        p.write_bytes(b"half a write")
    RunDir.open_existing(run).close()
    assert not any(p.exists() for p in stale)
    before = tree_digest(run)
    res = CliRunner().invoke(app, ["train", "--resume", str(run / "snapshot-000000-032"), "--kimg", "0.128",
                                   "--no-progress", "--workers", "0"])
    assert res.exit_code == 2 and "would overwrite its later snapshots" in one_line_error(res.output)
    assert tree_digest(run) == before


def test_two_processes_cannot_train_in_one_folder(tmp_path, monkeypatch):
    import sneakergan.train.rundir as rundir

    monkeypatch.setattr(rundir, "LOCK_WAIT_S", 0.5)  # the wait meant for orphaned loader workers
    a = RunDir.create(tmp_path / "r")
    with pytest.raises(RunDirError, match="another training process"):
        RunDir.open_existing(tmp_path / "r")
    a.close()
    RunDir.open_existing(tmp_path / "r").close()


# -- one source of truth for options ----------------------------------------------------------------------


def test_every_field_is_an_option_of_the_commands_that_offer_it():
    import typer.main

    cmd = typer.main.get_command(app)
    for command in ("train", "finetune"):
        opts = {o for p in cmd.commands[command].params for o in p.opts}
        for f, k in knobs(command):
            assert k.option(f.name) in opts, (command, f.name)
    finetune_opts = {o for p in cmd.commands["finetune"].params for o in p.opts}
    assert "--preset" not in finetune_opts and "--from" in finetune_opts  # the network comes from the source
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.metrics = ()  # type: ignore[misc]
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.replace(metrics=["a"], aspect=[3, 4]).to_dict()))) == \
        cfg.replace(metrics=("a",), aspect=(3, 4))


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "--batch must be >= 1"),
    (["--p", "1.5"], "--p must be <= 1"),
    (["--aug", "sometimes"], "--aug must be one of ada, fixed, none"),
    (["--snap", "0.25", "--tick", "4"], "--snap 0.25 must be a multiple of --tick 4"),
    (["--metrics", "kid50k_full", "--metrics-every", "6", "--tick", "4", "--snap", "8"],
     "--metrics-every 6 must be a multiple of --tick 4"),
    (["--precision", "fp64"], "--precision must be one of"),
])
def test_bad_settings_fail_with_one_line(data16, tmp_path, args, message, no_step):
    res = CliRunner().invoke(app, ["train", "--data", str(data16), "--out", str(tmp_path / "r"), *TINY, *args])
    assert res.exit_code == 2
    assert message in one_line_error(res.output)
    assert not (tmp_path / "r").exists()


# -- mistakes found before the first step -----------------------------------------------------------------


def test_preset_resolution_must_match_the_data(tmp_path, no_step):
    data64 = write_synth_dataset(tmp_path / "s64.zip", 8, 64, seed=1)
    res = CliRunner().invoke(app, ["train", "--data", str(data64), "--out", str(tmp_path / "r"), "--preset", "tiny",
                                   "--kimg", "1", "--no-progress", "--workers", "0"])
    assert res.exit_code == 2
    line = one_line_error(res.output)
    assert "--preset tiny is 32 px" in line and "64x64" in line and "demo64" in line and "--resolution 64" in line
    assert not (tmp_path / "r").exists()


def test_metrics_without_inception_weights_fail_before_training(data16, tmp_path, monkeypatch, no_step):
    monkeypatch.setenv("SNEAKERGAN_INCEPTION", str(tmp_path / "nowhere.pth"))
    res = CliRunner().invoke(app, ["train", "--data", str(data16), "--out", str(tmp_path / "r"), *TINY,
                                   "--metrics", "fid50k_full", "--kimg", "1"])
    assert res.exit_code == 2
    assert "Inception weights not found" in one_line_error(res.output)
    res = CliRunner().invoke(app, ["train", "--data", str(data16), "--out", str(tmp_path / "r"), *TINY,
                                   "--metrics", "fid5k_ful", "--kimg", "1"])
    assert res.exit_code == 2 and "unknown metric 'fid5k_ful'" in one_line_error(res.output)
    assert not (tmp_path / "r").exists()


def test_resume_target_below_the_run_fails(run64, no_step):
    before = tree_digest(run64)
    for kimg in ("0.032", "0.064"):
        res = CliRunner().invoke(app, ["train", "--resume", str(run64), "--kimg", kimg, "--no-progress"])
        assert res.exit_code == 2
        assert f"--kimg {float(kimg):g} is not above the 0.064 kimg" in one_line_error(res.output)
    res = CliRunner().invoke(app, ["train", "--resume", str(run64), "--kimg", "1", "--channel-max", "512"])
    assert res.exit_code == 2 and "drop --channel-max" in one_line_error(res.output)
    assert tree_digest(run64) == before


# -- resume: once, and metrics come back -------------------------------------------------------------------


def test_a_resume_reads_the_checkpoint_once(run64, tmp_path, monkeypatch):
    import shutil

    import sneakergan.modelfile as mf

    run = tmp_path / "again"
    shutil.copytree(run64, run)
    weights = (run / "checkpoint-latest.safetensors").resolve()
    loads, hashes = [], []
    real_load, real_hash = mf.load_file, mf.sha256_file
    monkeypatch.setattr(mf, "load_file", lambda p, *a, **k: (loads.append(Path(p).resolve()), real_load(p, *a, **k))[1])
    monkeypatch.setattr(mf, "sha256_file", lambda p: (hashes.append(Path(p).resolve()), real_hash(p))[1])
    res = CliRunner().invoke(app, ["train", "--resume", str(run), "--kimg", "0.096", "--no-progress", "--workers", "0"],
                             env=ENV)
    assert res.exit_code == 0, res.output
    assert loads == [weights]  # the checkpoint's tensors were read once
    assert hashes.count(weights) == 1  # and hashed once (later hashes are of the new snapshot)
    rows = read_log(run)
    assert [r["cur_nimg"] for r in rows] == [32, 64, 96] and rows[-1]["resumed_at_kimg"] == 0.064


def test_a_metric_failure_does_not_survive_a_resume(data16, tmp_path, monkeypatch):
    import sneakergan.metrics.pipeline as pipeline

    real = pipeline.compute_metrics
    calls = []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory (simulated)")
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "compute_metrics", flaky)
    out = tmp_path / "m"
    Trainer(cfg16(data16, out, aug="none", metrics=["kid50k_full"], metrics_num=8, metrics_extractor="random-tiny"),
            progress=False).run()
    assert len(calls) == 1  # failed at 32, not tried again at 64 in this process
    assert not [r for r in read_log(out) if "metrics" in r]
    saved = load_checkpoint(out / "checkpoint-latest", nets=()).state["train_config"]
    assert saved["metrics"] == ["kid50k_full"]
    base = TrainConfig.from_dict(saved)
    Trainer(resolve_config({"resume": str(out / "checkpoint-latest"), "kimg": 0.096}, base), progress=False).run()
    rows = read_log(out)
    assert [r["cur_nimg"] for r in rows] == [32, 64, 96]
    assert "kid50k_full" in rows[-1]["metrics"]


# -- progress ------------------------------------------------------------------------------------------------


def test_piped_train_prints_one_line_per_tick(data16, tmp_path):
    cmd = [sys.executable, "-m", "sneakergan.cli", "train", "--data", str(data16), "--out", str(tmp_path / "r"),
           "--kimg", "0.064", "--tick", "0.016", "--snap", "0.032", *TINY[:-1]]  # --progress left on: not a terminal
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ticks = [ln for ln in r.stdout.splitlines() if ln.startswith("kimg ")]
    assert len(ticks) == 4, r.stdout
    assert re.fullmatch(r"kimg 0\.016/0\.064  \d+\.\d+ s/kimg  ETA \d+:\d\d:\d\d  p 0\.\d{3}  G \S+  D \S+  r1 \S+",
                        ticks[0]), ticks[0]
    assert re.fullmatch(r"kimg 0\.064/0\.064  .* ETA 0:00:00  p 0\.\d{3}  r_t -?\d\.\d{3}  G \S+  D \S+", ticks[-1]), ticks[-1]
    assert r.stdout.splitlines()[0].startswith("training 16x16 (tiny) on 32 images")
    assert "\x1b" not in r.stdout and "━" not in r.stdout + r.stderr  # no bar, no escape codes in a log


def test_tick_line_and_device_stats():
    row = {"kimg": 12.0, "sec_per_kimg": 8.0, "p": 0.0126, "r_t": 0.55, "loss_G": 0.91, "loss_D": 1.21,
           "metrics": {"fid50k_full": 31.4}}
    line = tick_line(row, 500.0)
    assert line == "kimg 12.000/500  8.00 s/kimg  ETA 1:05:04  p 0.013  r_t 0.550  G 0.91  D 1.21  fid50k_full 31.4"
    s = TickStats()
    for v in (1.0, 2.0, 6.0):
        s.add({"a": torch.tensor(v), "b": torch.tensor(-v)})
    s.add({"a": torch.tensor(3.0)})
    assert s.read() == {"a": 3.0, "b": -3.0}
    assert s.read() == {}


# -- plot ----------------------------------------------------------------------------------------------------


def test_plot_draws_p_on_its_own_axis_the_target_resumes_and_metrics():
    from sneakergan.train.plot import build_figure

    rows = []
    for i in range(1, 7):
        row = {"kimg": float(i), "cur_nimg": i * 1000, "loss_G": 1.0, "loss_D": 1.2, "p": 0.01 * i, "r_t": 0.5,
               "sec_per_kimg": 3.0, "metrics": {"fid50k_full": 40.0 - i, "kid50k_full": 0.03,
                                                "div_precision": 0.5, "div_recall": 0.4,
                                                "div_recall_ceiling": 0.96, "mask_iou": 0.7}}
        if i == 4:
            row["resumed_at_kimg"] = 3.0
        rows.append(row)
    fig = build_figure(rows, "r", target=0.6)
    titles = [ax.get_title() for ax in fig.axes]
    assert {"augmentation", "quality", "diversity"} <= {t.split(" (")[0] for t in titles}
    aug = [ax for ax in fig.axes if ax.get_title() == "augmentation"][0]
    twin = [ax for ax in fig.axes if ax is not aug and ax.bbox.bounds == aug.bbox.bounds][0]
    assert [ln.get_label() for ln in aug.get_lines() if not ln.get_label().startswith("_")] == ["p"]
    labels = {ln.get_label(): ln for ln in twin.get_lines()}
    assert "r_t" in labels and list(labels["r_t target 0.6"].get_ydata()) == [0.6, 0.6]
    div = [ax for ax in fig.axes if ax.get_title().startswith("diversity")][0]
    lines = [ln for ln in div.get_lines() if ln.get_label() != "_resume"]
    named = {ln.get_label(): ln for ln in lines if not ln.get_label().startswith("_")}
    assert set(named) == {"div_recall", "mask_iou"}  # the headline figures; precision stays in the log
    ceiling = [ln for ln in lines if ln.get_linestyle() == "--"]
    assert len(ceiling) == 1 and ceiling[0].get_color() == named["div_recall"].get_color()  # beside its figure
    quality = [ax for ax in fig.axes if ax.get_title() == "quality"][0]
    assert quality.get_yscale() == "log"
    assert all(any(list(ln.get_xdata()) == [3.0, 3.0] for ln in ax.get_lines()) for ax in fig.axes
               if ax.get_title() in ("losses (dotted: resumed)", "quality"))


@pytest.mark.parametrize("width", [60, 150])
def test_live_bar_fits_the_terminal(monkeypatch, width):
    import io
    import re as re_

    from rich.console import Console

    import sneakergan.console as console_mod
    from sneakergan.train.progress import LiveBar

    buf = io.StringIO()
    monkeypatch.setattr(console_mod, "err_console", Console(file=buf, width=width, force_terminal=True))
    bar = LiveBar(stream=io.StringIO())
    bar.start(0, 64_000)
    for n in range(0, 64_001, 16_000):
        bar.step(n)
    bar.tick({"kimg": 64.0, "sec_per_kimg": 2.0, "p": 0.1, "loss_G": 1.0, "loss_D": 1.0})
    bar.stop()
    plain = re_.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    lines = [ln for ln in plain.replace("\r", "\n").split("\n") if ln.strip()]
    bars = [ln for ln in lines if ln.startswith("train ")]
    assert bars and all(len(ln) <= width for ln in bars)
    assert max(len(ln) for ln in bars) >= width - 2  # the bar stretches to the full width
    assert any("64.00/64 kimg" in ln for ln in bars)
    assert any(ln.startswith("kimg 64.000/64") for ln in lines)  # the tick line, above the bar
