"""The multi-process training-step timer behind `bench/bench_train.py --procs 2` (no timing asserted)."""

from __future__ import annotations

import pytest

from sneakergan.bench import noise_dataset, time_training_step_ddp
from sneakergan.nets import get_preset


def test_two_process_step_runs_the_global_batch(tmp_path):
    net = get_preset("tiny").network
    data = noise_dataset(tmp_path, net.img_width, net.img_height, count=16)
    batch, wall, cpu = time_training_step_ddp("tiny", "core", data, tmp_path / "run", iters=1, procs=2, batch=8)
    assert batch == 8  # global: each of the two ranks stepped on 4
    assert wall > 0 and cpu > 0


def test_a_failing_rank_is_reported(tmp_path):
    net = get_preset("tiny").network
    data = noise_dataset(tmp_path, net.img_width, net.img_height, count=16)
    with pytest.raises(RuntimeError, match="rank failed"):  # batch 7 cannot be split over 2 processes
        time_training_step_ddp("tiny", "core", data, tmp_path / "run", iters=1, procs=2, batch=7)
