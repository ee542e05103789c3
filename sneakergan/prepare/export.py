"""Write the dataset zip (StyleGAN2-ADA dataset-tool layout), its report and contact sheets.

Layout: `00000/img00000000.png`, `00000/img00000001.png`, ..., `00001/img00001000.png`, plus
`dataset.json` = {"labels": [["00000/img00000000.png", 3], ...]} or {"labels": null}, exactly what the
reference's dataset tool writes, so either side's training code reads the other's datasets (with a label file,
a `class_names` list is added, which the reference ignores).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw


def dataset_name(index: int) -> str:
    """Archive name of image `index`: a folder per 1000 images, as the dataset tool names them."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def write_dataset_zip(out: Path, images: Iterable[tuple[bytes, int | list[float] | None]],
                      with_labels: bool, class_names: list[str] | None = None) -> list[str]:
    """Stream (png bytes, label) pairs into `out`; returns the archive names in order.

    `class_names` (labels from a person's file) go into dataset.json beside `labels`: the reference's loader reads
    only `labels`, sneakergan keeps the names for `generate --class NAME` and the editor.

    Written to a temp file and renamed, so an interrupted export never leaves a half zip behind. PNGs are
    stored, not deflated again (they are compressed already).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    names: list[str] = []
    labels: list[list] = []
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for png, label in images:
                name = dataset_name(len(names))
                zf.writestr(name, png)
                names.append(name)
                labels.append([name, label])
            meta: dict = {"labels": labels if with_labels else None}
            if with_labels and class_names:
                meta["class_names"] = list(class_names)
            zf.writestr("dataset.json", json.dumps(meta))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return names


def report_paths(out: Path) -> dict[str, Path]:
    """Where the report files of dataset `out` go: beside it, named after it."""
    stem = Path(out).with_suffix("")
    return {"json": stem.with_name(stem.name + ".report.json"),
            "kept": stem.with_name(stem.name + ".kept.png"),
            "rejected": stem.with_name(stem.name + ".rejected.png"),
            "boring_model": stem.with_name(stem.name + ".boring-model.json")}


def contact_sheet(tiles: Sequence[tuple[Image.Image | None, str]], tile: int = 128, cols: int = 8) -> Image.Image:
    """A grid of thumbnails, each captioned (reason code, score); None draws a grey 'no image' tile."""
    cols = max(1, min(cols, len(tiles) or 1))
    rows = max(1, -(-len(tiles) // cols))
    cap = 14
    sheet = Image.new("RGB", (cols * tile, rows * (tile + cap)), (235, 235, 235))
    draw = ImageDraw.Draw(sheet)
    for k, (img, caption) in enumerate(tiles):
        x, y = (k % cols) * tile, (k // cols) * (tile + cap)
        if img is None:
            draw.rectangle((x + 2, y + 2, x + tile - 3, y + tile - 3), fill=(170, 170, 170))
            draw.text((x + 8, y + tile // 2 - 6), "no image", fill=(60, 60, 60))
        else:
            thumb = img.convert("RGB")
            thumb.thumbnail((tile - 4, tile - 4), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (x + (tile - thumb.width) // 2, y + (tile - thumb.height) // 2))
        draw.text((x + 3, y + tile), caption[: tile // 6], fill=(20, 20, 20))
    return sheet


def png_bytes(img: Image.Image, compress_level: int = 3) -> bytes:
    """PNG-encode an image (level 3: nearly the size of level 6 at a fraction of the time)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def write_report(path: Path, report: dict) -> None:
    """Write the JSON report atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, sort_keys=False))
    tmp.replace(path)
