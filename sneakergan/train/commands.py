"""CLI commands of the train stage: `train`, `finetune`, `plot` (registered on the main Typer app by `register`).

The options of `train` and `finetune` are derived from TrainConfig's fields (train/options.py): every one
defaults to "not given", so the value comes from the run being resumed, the preset's defaults
(REFERENCES.md) or the field default. That keeps `--resume` exact while letting a flag override.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .config import FINETUNE, TRAIN, ConfigError, knobs
from .options import build_command, field_values

_O = typer.Option

_OUTDIR = ("outdir", Optional[Path], _O(None, "--outdir", help="Parent folder: the run goes into a new numbered "
                                        "folder PARENT/00003-NAME (instead of --out)."))
_PROGRESS = ("progress", bool, _O(True, "--progress/--no-progress", help="The live bar on a terminal (without "
                                  "it, or when not a terminal: one plain line per tick)."))
_FMAPS = ("fmaps", Optional[float], _O(None, "--fmaps", help="Feature-map multiplier: channel_base = fmaps x 32768."))

# Fields that shape the network: fixed by the checkpoint when resuming.
NETWORK_FIELDS = tuple(f.name for f, k in knobs() if k.commands == (TRAIN,))


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("train")(build_command(
        TRAIN, [_OUTDIR, _FMAPS, _PROGRESS], lambda flags, extra: _run(TRAIN, flags, extra),
        "Train StyleGAN2-ADA on a dataset (torchrun-able: the same command runs one process per GPU)."))
    app.command("finetune")(build_command(
        FINETUNE, [_OUTDIR, _PROGRESS], lambda flags, extra: _run(FINETUNE, flags, extra),
        "Transfer learning (ADA paper): continue a trained model on a new, small dataset of the same resolution."))
    app.command("plot")(plot)


def plan(command: str, flags: dict[str, Any], extra: dict[str, Any]):
    """(TrainConfig, the loaded resume / transfer checkpoint or None): the whole configuration, resolved.

    The checkpoint is found and loaded once here and handed to the Trainer.
    """
    from .config import TrainConfig, resolve_config
    from .rundir import RunDirError, check_new, numbered_path, open_checkpoint

    flags = dict(flags)
    if extra.get("fmaps") is not None and "channel_base" not in flags:
        if extra["fmaps"] <= 0:
            raise ConfigError(f"--fmaps must be > 0, got {extra['fmaps']:g}")
        flags["channel_base"] = int(extra["fmaps"] * 32768)
    resume = flags.get("resume")
    try:
        ckpt = open_checkpoint(resume) if resume else None
        if ckpt is not None:
            if "train_config" not in ckpt.state:
                raise ConfigError(f"{ckpt.path}: not a training checkpoint (no train_config); use finetune --from "
                                  "to start from it")
            base = TrainConfig.from_dict(ckpt.state["train_config"])
            changed = [f for f in NETWORK_FIELDS if f in flags and flags[f] != getattr(base, f)]
            if changed:
                raise ConfigError(f"--resume keeps the checkpoint's network; drop "
                                  f"{', '.join('--' + f.replace('_', '-') for f in changed)} (or fine-tune with "
                                  "finetune --from)")
            flags["resume"] = str(ckpt.path.with_suffix(""))
        elif command == FINETUNE:
            ckpt = open_checkpoint(flags["transfer_from"])
            base = _transfer_base(ckpt)
        else:
            base = None
            if not flags.get("data"):
                raise ConfigError("--data is required (a folder of images or a dataset zip)")
    except RunDirError as e:
        raise ConfigError(str(e)) from None

    if extra.get("outdir") is not None:
        if flags.get("out"):
            raise ConfigError("give --out (the run folder) or --outdir (a parent for numbered runs), not both")
        data = flags.get("data") or (base.data if base else "")
        name = Path(data).stem or "run"
        name += f"-{flags.get('preset') or (base.preset if base else TrainConfig.preset)}" if command == TRAIN else "-ft"
        flags["out"] = str(numbered_path(extra["outdir"], name))
    elif not flags.get("out"):
        if not resume:
            raise ConfigError("--out (a new run folder) or --outdir (a parent for numbered runs) is required")
        flags["out"] = str(Path(flags["resume"]).parent)  # continue in the run's own folder
    cfg = resolve_config(flags, base)
    if not cfg.resume:
        check_new(cfg.out)  # before the data is read and the networks built
    return cfg, ckpt


def _run(command: str, flags: dict[str, Any], extra: dict[str, Any]) -> None:
    from ..threads import set_wait_policy

    set_wait_policy()  # a short OpenMP spin (threads.py), before torch starts its thread pool
    from ..console import fail
    from ..errors import UserError
    from .loop import Trainer

    trainer = None
    try:
        cfg, ckpt = plan(command, field_values(command, flags), extra)
        trainer = Trainer(cfg, progress=extra["progress"], checkpoint=ckpt)
        del ckpt  # the trainer holds what it needs; let the loaded tensors go
        trainer._print(trainer.describe())
        result = trainer.run()
    except UserError as e:
        fail(str(e))
    except KeyboardInterrupt:
        out = trainer.out if trainer is not None else flags.get("out", "RUN")
        fail(f"interrupted; continue with --resume {out}", code=130)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if trainer.is_main:
        where = f"{result.checkpoint}.safetensors" if result.checkpoint else "(no checkpoint)"
        trainer._print(f"done at {result.cur_nimg / 1000:g} kimg: {where}, {Path(cfg.out) / 'grid-latest.png'}, "
                       f"{Path(cfg.out) / 'log.jsonl'}")


def _transfer_base(ckpt):
    """Training settings for fine-tuning: the source run's (if recorded), else the reference's 'auto' config."""
    from .config import TrainConfig, auto_training

    src = ckpt.state.get("train_config")
    if src:
        base = TrainConfig.from_dict(src)
    else:
        auto = auto_training(ckpt.config.resolution)
        auto.pop("mbstd_group")
        base = TrainConfig(preset="auto").replace(**auto)
    # Transfer learning (ADA paper): fresh augmentation from p = 0 that adapts 5x faster.
    return base.replace(resume=None, ada_kimg=100.0, p=0.0, freeze_d=0, invert=ckpt.config.invert)


def plot(
    run: Path = typer.Argument(..., help="Run folder with log.jsonl."),
    out: Optional[Path] = _O(None, "--out", help="PNG to write (default RUN/curves.png)."),
) -> None:
    """Draw the training curves (losses, p and r_t, D outputs, speed, metrics) of a run to a PNG."""
    from ..console import fail
    from .plot import plot_run

    try:
        path = plot_run(run, out)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"wrote {path}")
