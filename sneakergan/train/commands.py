"""CLI commands of the train stage: `train`, `finetune`, `plot` (registered on the main Typer app by `register`).

Every training flag defaults to None, meaning "not given": the value then comes from the run being resumed, or
the preset's defaults (REFERENCES.md), or TrainConfig. That keeps `--resume` exact while letting a flag override.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("train")(train)
    app.command("finetune")(finetune)
    app.command("plot")(plot)


def _parse_aspect(value: Optional[str]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.replace("x", ":").split(":"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise typer.BadParameter(f"{value!r}: use WIDTH:HEIGHT such as 3:4", param_hint="--aspect") from None
    return (w, h)


# Options shared by train and finetune (Typer reads them from the signatures).
_O = typer.Option


def train(
    data: Optional[Path] = _O(None, "--data", help="Dataset: a folder of images or a StyleGAN2-ADA zip."),
    out: Optional[Path] = _O(None, "--out", help="Run folder: checkpoints, grids, log.jsonl (default with --resume: its folder)."),
    preset: Optional[str] = _O(None, "--preset", help="Network + training defaults: tiny, demo64, small, paper256, ..."),
    kimg: Optional[float] = _O(None, "--kimg", help="Train until this many thousand real images were shown."),
    batch: Optional[int] = _O(None, "--batch", help="Global batch size."),
    lr: Optional[float] = _O(None, "--lr", help="Adam learning rate (G and D)."),
    gamma: Optional[float] = _O(None, "--gamma", help="R1 regularisation weight."),
    pl_weight: Optional[float] = _O(None, "--pl-weight", help="Path-length regularisation weight (0 = off)."),
    style_mix: Optional[float] = _O(None, "--style-mix", help="Style-mixing probability (0 = off)."),
    ema_kimg: Optional[float] = _O(None, "--ema", help="G_ema half-life in kimg."),
    mbstd_group: Optional[int] = _O(None, "--mbstd-group", help="Minibatch-stddev group size."),
    fmaps: Optional[float] = _O(None, "--fmaps", help="Feature-map multiplier: channel_base = fmaps x 32768."),
    channel_base: Optional[int] = _O(None, "--channel-base", help="channel_base directly (overrides --fmaps)."),
    channel_max: Optional[int] = _O(None, "--channel-max", help="Most feature maps in any layer."),
    aspect: Optional[str] = _O(None, "--aspect", help="WIDTH:HEIGHT (e.g. 3:4); must match the data."),
    invert: Optional[bool] = _O(None, "--invert/--no-invert", help="Train on inverted colours (undone at generation)."),
    aug: Optional[str] = _O(None, "--aug", help="Augmentation: ada (adaptive p), fixed (--p), none."),
    target: Optional[float] = _O(None, "--target", help="ADA target for r_t = E(sign(D(real))) (default 0.6)."),
    p: Optional[float] = _O(None, "--p", help="Initial (ada) or constant (fixed) augmentation probability."),
    augpipe: Optional[str] = _O(None, "--augpipe", help="blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc."),
    ada_kimg: Optional[float] = _O(None, "--ada-kimg", help="kimg for p to move by 1 (500; 100 for transfer)."),
    mirror: Optional[bool] = _O(None, "--mirror/--no-mirror", help="Add x-flipped copies of the data."),
    cond: Optional[bool] = _O(None, "--cond/--no-cond", help="Conditional on the dataset's labels."),
    freeze_d: Optional[int] = _O(None, "--freeze-d", help="Freeze the first K discriminator blocks (Freeze-D)."),
    seed: Optional[int] = _O(None, "--seed", help="Random seed (weights, data order)."),
    snap: Optional[float] = _O(None, "--snap", help="kimg between checkpoints + sample grids."),
    tick: Optional[float] = _O(None, "--tick", help="kimg between log lines."),
    workers: Optional[int] = _O(None, "--workers", help="Data-loading processes."),
    threads: Optional[int] = _O(None, "--threads", help="CPU threads (default: all cores)."),
    device: Optional[str] = _O(None, "--device", help="auto, cpu, cuda."),
    precision: Optional[str] = _O(None, "--precision", help="auto (bf16 on native-bf16 CPUs / CUDA), fp32, bf16, fp16 (CUDA)."),
    metrics: Optional[List[str]] = _O(None, "--metrics", help="Metrics during training, e.g. fid50k_full (repeatable)."),
    metrics_every: Optional[float] = _O(None, "--metrics-every", help="kimg between metric evaluations (default: --snap)."),
    metrics_num: Optional[int] = _O(None, "--metrics-num", help="Images per metric (default: the metric's own count)."),
    metrics_extractor: Optional[str] = _O(None, "--metrics-extractor", help="inception (default) or random-tiny."),
    metrics_features: Optional[Path] = _O(None, "--metrics-features", help="Local Inception weights file."),
    resume: Optional[Path] = _O(None, "--resume", help="Checkpoint or run folder to continue exactly."),
    progress: bool = _O(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Train StyleGAN2-ADA on a dataset (torchrun-able: the same command runs one process per GPU)."""
    if out is None:
        if resume is None:
            raise typer.BadParameter("--out is required (the run folder)", param_hint="--out")
        out = resume if resume.is_dir() else resume.parent
    flags = dict(data=str(data) if data else None, out=str(out), preset=preset, kimg=kimg, batch=batch, lr=lr,
                 gamma=gamma, pl_weight=pl_weight, style_mix=style_mix, ema_kimg=ema_kimg, mbstd_group=mbstd_group,
                 channel_base=channel_base if channel_base is not None else (int(fmaps * 32768) if fmaps else None),
                 channel_max=channel_max, aspect=_parse_aspect(aspect), invert=invert, aug=aug, target=target, p=p,
                 augpipe=augpipe, ada_kimg=ada_kimg, mirror=mirror, cond=cond, freeze_d=freeze_d, seed=seed,
                 snap=snap, tick=tick, workers=workers, threads=threads, device=device, precision=precision,
                 metrics=list(metrics) if metrics else None, metrics_every=metrics_every, metrics_num=metrics_num,
                 metrics_extractor=metrics_extractor,
                 metrics_features=str(metrics_features) if metrics_features else None,
                 resume=str(resume) if resume else None)
    _run(flags, progress)


def finetune(
    source: Path = _O(..., "--from", help="Trained checkpoint (or run folder, or imported reference model) to start from."),
    data: Path = _O(..., "--data", help="The (small, curated) dataset, same resolution as the model."),
    kimg: float = _O(..., "--kimg", help="kimg to fine-tune for (~1000 is often enough)."),
    out: Path = _O(..., "--out", help="Run folder."),
    freeze_d: Optional[int] = _O(None, "--freeze-d", help="Freeze the first K discriminator blocks (Freeze-D)."),
    batch: Optional[int] = _O(None, "--batch", help="Global batch size."),
    lr: Optional[float] = _O(None, "--lr", help="Adam learning rate."),
    gamma: Optional[float] = _O(None, "--gamma", help="R1 regularisation weight."),
    aug: Optional[str] = _O(None, "--aug", help="ada, fixed, none."),
    target: Optional[float] = _O(None, "--target", help="ADA target."),
    p: Optional[float] = _O(None, "--p", help="Initial / constant augmentation probability."),
    augpipe: Optional[str] = _O(None, "--augpipe", help="Augmentation pipe (bgc; bg keeps colourways)."),
    ada_kimg: Optional[float] = _O(None, "--ada-kimg", help="kimg for p to move by 1 (default 100 for transfer)."),
    mirror: Optional[bool] = _O(None, "--mirror/--no-mirror", help="Add x-flipped copies of the data."),
    cond: Optional[bool] = _O(None, "--cond/--no-cond", help="Conditional on the dataset's labels."),
    seed: Optional[int] = _O(None, "--seed", help="Random seed."),
    snap: Optional[float] = _O(None, "--snap", help="kimg between checkpoints + grids."),
    tick: Optional[float] = _O(None, "--tick", help="kimg between log lines."),
    workers: Optional[int] = _O(None, "--workers", help="Data-loading processes."),
    threads: Optional[int] = _O(None, "--threads", help="CPU threads."),
    device: Optional[str] = _O(None, "--device", help="auto, cpu, cuda."),
    precision: Optional[str] = _O(None, "--precision", help="auto (bf16 on native-bf16 CPUs / CUDA), fp32, bf16, fp16 (CUDA)."),
    resume: Optional[Path] = _O(None, "--resume", help="Continue a killed fine-tuning run (its checkpoint or folder)."),
    progress: bool = _O(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Transfer learning (ADA paper): continue a trained model on a new, small dataset of the same resolution."""
    flags = dict(data=str(data), out=str(out), kimg=kimg, freeze_d=freeze_d, batch=batch, lr=lr, gamma=gamma,
                 aug=aug, target=target, p=p, augpipe=augpipe, ada_kimg=ada_kimg, mirror=mirror, cond=cond, seed=seed,
                 snap=snap, tick=tick, workers=workers, threads=threads, device=device, precision=precision,
                 resume=str(resume) if resume else None)
    _run(flags, progress, transfer_from=str(source))


def _run(flags: dict, progress: bool, transfer_from: str | None = None) -> None:
    import os

    # OpenMP's default busy-waiting collapses when the cores are shared (other jobs, data workers): measured
    # 7x slower with 2 threads on a loaded 2-core machine; passive waiting costs little when idle. Must be
    # set before torch starts its thread pool, i.e. before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..console import console, fail
    from ..modelfile import ModelFileError
    from .config import TrainConfig, resolve_config
    from .loop import TrainError, Trainer

    try:
        if flags.get("resume"):
            from .loop import find_checkpoint
            from ..modelfile import load_checkpoint

            ckpt_path = find_checkpoint(flags["resume"])
            state = load_checkpoint(ckpt_path, nets=()).state
            if "train_config" not in state:
                fail(f"{ckpt_path}: not a training checkpoint (no train_config); use finetune --from to start from it")
            base = TrainConfig.from_dict(state["train_config"])
            flags["resume"] = str(ckpt_path)
            cfg = resolve_config(flags, base)
        elif transfer_from:
            cfg = resolve_config({**flags, "transfer_from": None}, _transfer_base(transfer_from))
            cfg.transfer_from = transfer_from
        else:
            if not flags.get("data"):
                fail("--data is required (a folder of images or a dataset zip)")
            cfg = resolve_config(flags)
        trainer = Trainer(cfg, progress=progress, console=console)
        if trainer.is_main:
            net = trainer.net_cfg
            what = "resuming" if cfg.resume else ("fine-tuning" if cfg.transfer_from else "training")
            console.print(
                f"{what} {net.img_width}x{net.img_height} ({cfg.preset if not cfg.transfer_from else 'from ' + str(cfg.transfer_from)}) "
                f"on {trainer.dataset.num_images} images{' (+ mirrored)' if cfg.mirror else ''}, batch {cfg.batch}, "
                f"gamma {cfg.gamma:g}, aug {cfg.aug}/{cfg.augpipe}, from {trainer.cur_nimg / 1000:g} to {cfg.kimg:g} kimg "
                f"-> {cfg.out}", highlight=False)
        result = trainer.run()
    except (TrainError, ModelFileError, ValueError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted; continue with --resume " + str(Path(flags["out"]) / "checkpoint-latest"), code=130)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if trainer.is_main:
        console.print(f"done at {result.cur_nimg / 1000:g} kimg: {result.checkpoint}.safetensors, "
                      f"{Path(cfg.out) / 'grid-latest.png'}, {Path(cfg.out) / 'log.jsonl'}", highlight=False)


def _transfer_base(source: str):
    """Training settings for fine-tuning: the source run's (if recorded), else its preset's / the 'auto' config."""
    import dataclasses

    from ..modelfile import load_checkpoint
    from .config import TrainConfig, auto_training
    from .loop import find_checkpoint

    path = find_checkpoint(source) if Path(source).is_dir() else source
    ckpt = load_checkpoint(path, nets=())
    src = ckpt.state.get("train_config")
    if src:
        base = TrainConfig.from_dict(src)
    else:
        res = ckpt.config.resolution
        auto = auto_training(res)
        auto.pop("mbstd_group")
        base = dataclasses.replace(TrainConfig(preset="auto"), **auto)
    # Transfer learning (ADA paper): fresh augmentation from p = 0 that adapts 5x faster.
    return dataclasses.replace(base, resume=None, ada_kimg=100.0, p=0.0, freeze_d=0, kimg=base.kimg,
                               invert=ckpt.config.invert)


def plot(
    run: Path = typer.Argument(..., help="Run folder with log.jsonl."),
    out: Optional[Path] = _O(None, "--out", help="PNG to write (default RUN/curves.png)."),
) -> None:
    """Draw the training curves (losses, p, r_t, D outputs, metrics) of a run to a PNG."""
    from ..console import fail
    from .plot import plot_run

    try:
        path = plot_run(run, out)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"wrote {path}")
