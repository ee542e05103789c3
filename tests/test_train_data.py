"""Training data (sneakergan.train.dataset): zip / folder reading, labels, mirror, up-front checks, sampler."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sneakergan.train.dataset import DatasetError, ImageDataset, InfiniteSampler, to_float


pytestmark = pytest.mark.usefixtures("one_thread")


def png(size=(16, 16), color=(10, 20, 30), seed=None) -> bytes:
    if seed is None:
        arr = np.zeros((size[1], size[0], 3), np.uint8) + np.array(color, np.uint8)
    else:
        arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_zip(path: Path, n: int = 6, size=(16, 16), labels=None, extra: dict | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        names = [f"00000/img{i:08d}.png" for i in range(n)]
        for i, name in enumerate(names):
            zf.writestr(name, png(size, seed=i))
        if labels is not None:
            zf.writestr("dataset.json", json.dumps({"labels": labels(names) if callable(labels) else labels}))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def test_zip_with_class_labels_gives_uint8_chw_and_one_hot(tmp_path):
    ds = ImageDataset(make_zip(tmp_path / "d.zip", labels=lambda ns: [[n, i % 3] for i, n in enumerate(ns)]),
                      use_labels=True)
    assert (ds.num_images, ds.width, ds.height, ds.label_dim) == (6, 16, 16, 3)
    img, label = ds[4]
    assert img.dtype == torch.uint8 and img.shape == (3, 16, 16)
    assert label.tolist() == [0.0, 1.0, 0.0]
    expected = np.asarray(Image.open(io.BytesIO(png(seed=4))))
    assert np.array_equal(img.permute(1, 2, 0).numpy(), expected)


def test_mirror_doubles_with_flipped_twins_and_labels_off_by_default(tmp_path):
    ds = ImageDataset(make_zip(tmp_path / "d.zip"), mirror=True)
    assert len(ds) == 12 and ds.label_dim == 0
    a, la = ds[2]
    b, _ = ds[8]
    assert torch.equal(b, a.flip(-1)) and la.numel() == 0


def test_folder_dataset_and_non_square(tmp_path):
    for i in range(3):
        (tmp_path / "imgs" / "sub").mkdir(parents=True, exist_ok=True)
        (tmp_path / "imgs" / "sub" / f"{i}.png").write_bytes(png((12, 16), seed=i))
    ds = ImageDataset(tmp_path / "imgs")
    info = ds.info()
    assert (info.width, info.height, info.resolution, info.aspect) == (12, 16, 16, (3, 4))
    assert ds[0][0].shape == (3, 16, 12)


def test_zero_images_is_a_clear_error(tmp_path):
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("dataset.json", json.dumps({"labels": None}))
    with pytest.raises(DatasetError, match="contains no images"):
        ImageDataset(tmp_path / "empty.zip")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DatasetError, match="contains no images"):
        ImageDataset(tmp_path / "emptydir")
    with pytest.raises(DatasetError, match="no such file"):
        ImageDataset(tmp_path / "missing.zip")


def test_mixed_and_bad_sizes_are_clear_errors(tmp_path):
    path = make_zip(tmp_path / "mixed.zip", extra={"00000/odd.png": png((32, 32))})
    with pytest.raises(DatasetError, match="mixed sizes.*16x16.*32x32"):
        ImageDataset(path)
    with pytest.raises(DatasetError, match="power of two"):
        ImageDataset(make_zip(tmp_path / "npot.zip", size=(24, 24)))
    with pytest.raises(DatasetError, match="cannot read image"):
        ImageDataset(make_zip(tmp_path / "broken.zip", extra={"00000/zz.png": b"not a png"}))


def test_labels_that_do_not_match_are_clear_errors(tmp_path):
    missing = make_zip(tmp_path / "m.zip", labels=lambda ns: [[n, 0] for n in ns[:-1]])
    with pytest.raises(DatasetError, match="1 of 6 images have no label"):
        ImageDataset(missing, use_labels=True)
    extra = make_zip(tmp_path / "e.zip", labels=lambda ns: [[n, 0] for n in ns] + [["00000/ghost.png", 1]])
    with pytest.raises(DatasetError, match="not images in the dataset.*ghost"):
        ImageDataset(extra, use_labels=True)
    ragged = make_zip(tmp_path / "r.zip", labels=lambda ns: [[n, [0.1] * (1 + i % 2)] for i, n in enumerate(ns)])
    with pytest.raises(DatasetError, match="equal-length"):
        ImageDataset(ragged, use_labels=True)
    nolabels = make_zip(tmp_path / "n.zip", labels=None)
    with pytest.raises(DatasetError, match="--cond needs labels"):
        ImageDataset(nolabels, use_labels=True)
    vec = ImageDataset(make_zip(tmp_path / "v.zip", labels=lambda ns: [[n, [0.5, i]] for i, n in enumerate(ns)]),
                       use_labels=True)
    assert vec.label_dim == 2 and vec.label(3).tolist() == [0.5, 3.0]


def test_zip_handle_is_per_process_and_dataloader_workers_stream(tmp_path):
    ds = ImageDataset(make_zip(tmp_path / "d.zip", n=8))
    _ = ds[0]  # opens the zip in this process
    assert ds._zip is not None
    assert ds.__getstate__()["_zip"] is None  # what a worker receives: it opens its own handle lazily
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1)
    batches = [b for b, _ in loader]
    assert torch.equal(torch.cat(batches), torch.stack([ds[i][0] for i in range(8)]))


def test_infinite_sampler_resumes_mid_epoch_and_splits_ranks():
    full = InfiniteSampler(10, seed=3)
    it = iter(full)
    stream = [next(it) for _ in range(35)]
    assert sorted(stream[:10]) == list(range(10)) and stream[:10] != stream[10:20]
    resumed = iter(InfiniteSampler(10, seed=3, start=17))
    assert [next(resumed) for _ in range(18)] == stream[17:35]
    r0, r1 = iter(InfiniteSampler(10, seed=3, rank=0, world_size=2)), iter(InfiniteSampler(10, seed=3, rank=1, world_size=2))
    assert [next(r0) for _ in range(5)] == stream[0:10:2] and [next(r1) for _ in range(5)] == stream[1:10:2]


def test_to_float_and_invert():
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert to_float(x).flatten().tolist() == [-1.0, 1.0]
    assert to_float(x, invert=True).flatten().tolist() == [1.0, -1.0]


def test_cli_reports_bad_dataset_in_one_line(tmp_path):
    path = make_zip(tmp_path / "mixed.zip", extra={"00000/odd.png": png((32, 32))})
    r = subprocess.run([sys.executable, "-m", "sneakergan.cli", "train", "--data", str(path), "--out",
                        str(tmp_path / "run"), "--kimg", "1", "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "mixed sizes" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run" / "checkpoint-latest.json").exists()
