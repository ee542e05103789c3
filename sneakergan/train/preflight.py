"""Checks of the whole configuration against the data, the checkpoint and the run folder, made before the first
step so every mistake is one line and nothing has been written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from .config import ConfigError, TrainConfig
from .rundir import RunDir, RunDirError, check_new


def check_network_fits_data(net_cfg: Any, ds: Any, cfg: TrainConfig, batch_gpu: int) -> None:
    """The network (new, resumed or fine-tuned) against the images, labels and batch."""
    if (net_cfg.img_width, net_cfg.img_height) != (ds.width, ds.height):
        what = "resume from" if cfg.resume else "fine-tune"
        raise UserError(
            f"cannot {what} a {net_cfg.img_width}x{net_cfg.img_height} model on {ds.width}x{ds.height} images "
            f"({cfg.data}); prepare the data at {net_cfg.img_width}x{net_cfg.img_height}")
    if net_cfg.c_dim and net_cfg.c_dim != ds.label_dim:
        raise UserError(f"the model takes {net_cfg.c_dim} label values, {cfg.data} has {ds.label_dim} "
                        "(use --cond with a labelled dataset)")
    group = net_cfg.mbstd_group
    if group > 0 and batch_gpu % min(group, batch_gpu):
        raise ConfigError(f"batch per process {batch_gpu} must be divisible by the minibatch-stddev group {group}")


def check_target(cfg: TrainConfig, cur_nimg: int, resumed: bool) -> None:
    """A resume must have something left to train."""
    if resumed and round(cfg.kimg * 1000) <= cur_nimg:
        raise ConfigError(f"--kimg {cfg.kimg:g} is not above the {cur_nimg / 1000:g} kimg this run has trained: "
                          "nothing to do (give a larger --kimg to continue)")


def check_run_folder(out: Path, source: Path | None, cur_nimg: int, resumed: bool) -> bool:
    """True when the run continues in its own folder. A new run needs a new or empty folder; resuming in place
    must not overwrite snapshots the run made after the checkpoint."""
    if resumed and source is not None and out.resolve() == source.parent.resolve():
        later = [n for n, _ in RunDir(out).snapshots() if n > cur_nimg]
        if later:
            raise RunDirError(
                f"{out} went on to {max(later) / 1000:g} kimg after {source.name}: resuming there would overwrite "
                f"its later snapshots; resume from {out} (its latest checkpoint) or into a new --out")
        return True
    check_new(out)
    return False
