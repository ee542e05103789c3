"""Hostile dataset zips: one DatasetError line each within bounded time and memory, nothing written; a corrupt image
that passes the header check is skipped and reported instead of ending a run. The corpus is written here.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from hostile import assert_one_line_errors, run_corpus, snapshot_tree  # noqa: E402

from sneakergan.errors import UserError  # noqa: E402
from sneakergan.metrics.data import DatasetError as MetricsDatasetError  # noqa: E402
from sneakergan.metrics.data import ImageDataset as MetricsDataset  # noqa: E402
from sneakergan.train.dataset import DatasetError, ImageDataset  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def png(size=(16, 16), seed=0) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def images(n=4, **kw) -> dict[str, bytes]:
    return {f"00000/img{i:08d}.png": png(seed=i, **kw) for i in range(n)}


def patch_member(path: Path, local_offset: int, central_offset: int, value: bytes) -> None:
    """Overwrite a field of the first member in both its local header and its central-directory entry."""
    data = bytearray(path.read_bytes())
    lo, ce = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[lo + local_offset:lo + local_offset + len(value)] = value
    data[ce + central_offset:ce + central_offset + len(value)] = value
    path.write_bytes(bytes(data))


def padded_zip(path: Path, pad_bytes: int) -> Path:
    """A valid PNG followed by `pad_bytes` zeros in one deflated member (decoders ignore the tail)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in images(3).items():
            zf.writestr(name, data)
        with zf.open("00000/img99999999.png", "w", force_zip64=True) as f:
            f.write(png(seed=9))
            chunk = bytes(1 << 22)
            for _ in range(pad_bytes // len(chunk)):
                f.write(chunk)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-data")
    cases: dict[str, tuple[str, bool]] = {}  # name -> (message, use_labels)

    def case(name: str, message: str, use_labels: bool = False) -> Path:
        cases[name] = (message, use_labels)
        return root / f"{name}.zip"

    padded_zip(case("padded", "declares 268,"), 256 << 20)  # 2 GiB in the issue; the cap is the same check
    unsupported = write_zip(case("method", "compression method 99"), images(), method=zipfile.ZIP_STORED)
    patch_member(unsupported, 8, 10, struct.pack("<H", 99))
    encrypted = write_zip(case("encrypted", "is encrypted"), images())
    patch_member(encrypted, 6, 8, struct.pack("<H", 0x1))
    write_zip(case("huge_label", "class label 1000000000 is too large", True),
              {**images(2), "dataset.json": json.dumps({"labels": [["00000/img00000000.png", 10**9],
                                                                   ["00000/img00000001.png", 0]]}).encode()})
    write_zip(case("deep_json", "nested too deeply", True),
              {**images(2), "dataset.json": b"[" * 100_000 + b"]" * 100_000})
    write_zip(case("huge_side", "longer side must be a power of two"),
              {"a.png": png((2048, 16)), "b.png": png((2048, 16), seed=1)})
    write_zip(case("garbage", "cannot read image"), {**images(2), "00000/zz.png": b"\x89PNG\r\n\x1a\n" + bytes(40)})
    broken = write_zip(case("bad_directory", "not a folder or a zip archive"), images())
    broken.write_bytes(broken.read_bytes()[:-30])
    bad_crc = write_zip(case("all_bad_crc", "bad crc-32"), images(2))  # small: the header check reads to the CRC
    patch_member(bad_crc, 14, 16, b"\0\0\0\0")
    return root, cases


def test_hostile_zips_are_one_line_dataset_errors_in_bounded_memory(corpus):
    root, cases = corpus
    before = snapshot_tree(root)
    for use_labels in (False, True):
        subset = {n: m for n, (m, lab) in cases.items() if lab == use_labels}
        result = run_corpus("hostile:read_train_dataset", {n: [str(root / f"{n}.zip")] for n in subset},
                            kwargs={"use_labels": use_labels})
        assert_one_line_errors(result, subset, "DatasetError", max_seconds=5)
        assert all("UserError" in r["mro"] for r in result["cases"].values())
        # Members were read whole (4.3 GB for the padded one); labels were a dense N x 10^9 table (74.5 GiB).
        assert result["peak_mb"] - result["base_mb"] < 100, result
    assert snapshot_tree(root) == before


def test_metrics_reader_refuses_the_same_archives(corpus):
    root, cases = corpus
    wanted = {"padded": "declares 268,", "method": "compression method 99", "encrypted": "is encrypted",
              "all_bad_crc": "bad crc", "garbage": "cannot read"}
    result = run_corpus("hostile:read_metrics_dataset", {n: [str(root / f"{n}.zip")] for n in wanted})
    assert_one_line_errors(result, wanted, "DatasetError", max_seconds=5)
    assert result["peak_mb"] - result["base_mb"] < 100, result


def test_a_padded_file_in_a_folder_dataset_is_refused_up_front(tmp_path):
    for name, data in images(3).items():
        (tmp_path / Path(name).name).write_bytes(data)
    with open(tmp_path / "padded.png", "wb") as f:
        f.write(png(seed=7))
        f.truncate(8 << 20)  # sparse zeros after the PNG
    with pytest.raises(DatasetError, match="padded.png is 8,388,608 bytes, more than the 1,048,576"):
        ImageDataset(tmp_path)


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]  # header intact: passes the up-front size check


def test_a_truncated_image_is_skipped_and_reported_not_fatal(tmp_path):
    members = images(5)
    bad = "00000/img00000002.png"
    members[bad] = truncated(members[bad])
    labels = {"labels": [[n, i] for i, n in enumerate(members)]}
    path = write_zip(tmp_path / "t.zip", {**members, "dataset.json": json.dumps(labels).encode()})
    ds = ImageDataset(path, use_labels=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=0)
    imgs, labs = next(iter(loader))
    assert imgs.shape == (5, 3, 16, 16)
    assert list(ds.skipped) == [bad] and "cannot decode" in ds.skipped[bad]
    # The stand-in is the next image, with its own label, so images and labels never get out of step.
    expected_next = ImageDataset(write_zip(tmp_path / "ok.zip", images(5)))[3][0]
    assert torch.equal(imgs[2], expected_next) and labs[2].argmax() == 3
    assert ds.verify() == {bad: ds.skipped[bad]}


def test_an_all_bad_dataset_in_a_worker_is_still_one_line(tmp_path):
    members = {n: truncated(d) for n, d in images(3).items()}
    ds = ImageDataset(write_zip(tmp_path / "bad.zip", members))
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1)
    with pytest.raises(DatasetError) as e:
        next(iter(loader))
    assert "\n" not in str(e.value) and str(e.value).endswith("check the dataset"), str(e.value)


def test_a_bad_crc_in_one_member_is_skipped(tmp_path):
    # 256 px noise: the header check reads the first few KB only, so the CRC fails when the pixels are read.
    path = write_zip(tmp_path / "c.zip", images(3, size=(256, 256)), method=zipfile.ZIP_STORED)
    patch_member(path, 14, 16, b"\x01\x02\x03\x04")  # the first member's CRC
    ds = ImageDataset(path)
    assert all(ds[i][0].shape == (3, 256, 256) for i in range(3))
    assert "Bad CRC" in next(iter(ds.skipped.values()))
    with MetricsDataset(path) as m, pytest.raises(MetricsDatasetError, match="Bad CRC"):
        m.load(0)


def test_class_labels_are_not_a_dense_table(tmp_path):
    names = list(images(3))
    path = write_zip(tmp_path / "l.zip", {**images(3), "dataset.json": json.dumps(
        {"labels": [[n, c] for n, c in zip(names, (0, 60_000, 7))]}).encode()})
    ds = ImageDataset(path, use_labels=True)
    assert ds.label_dim == 60_001 and ds.label(1).shape == (60_001,) and ds.label(1)[60_000] == 1
    assert ds.info().label_kind == "class"
    assert issubclass(DatasetError, UserError) and issubclass(MetricsDatasetError, UserError)
