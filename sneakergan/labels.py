"""Class labels a person brings, and the class names a conditional model keeps.

A label file maps an image to a class name. The image is named as the person knows it: its original path (as
given to `collect folder`, absolute or relative to that folder), its URL, or its sha256. Two formats:

- CSV: two columns, `image,class` (a header row is recognised and skipped), e.g. `photos/af1.jpg,low top`;
- JSON: an object `{"photos/af1.jpg": "low top", ...}` or a list of `[image, class]` pairs.

`prepare --labels FILE` writes them as the reference dataset tool does, `dataset.json` =
`{"labels": [["00000/img00000000.png", 2], ...], "class_names": [...]}`: class indices are the positions of the
names in sorted order; the reference's loader reads `labels` and ignores the extra key. Training records the
dataset path, `export` copies the names into the model file, and `generate --class NAME` (and the editor) read
them back with `model_class_names`.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any, Iterable

from .errors import UserError

MAX_CLASSES = 1000
MAX_NAME_CHARS = 60
MAX_FILE_BYTES = 64 << 20
_HEADER_KEYS = {"image", "path", "file", "filename", "url", "image_url", "sha256", "key"}
_HEADER_VALUES = {"class", "label", "class_name", "name"}


class LabelsError(UserError):
    """A label file that cannot be read, or a class a model does not have."""


def _clean_name(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise LabelsError(f"{where}: a class name must be text, got {value!r}")
    name = " ".join(str(value).split())
    if not name or len(name) > MAX_NAME_CHARS:
        raise LabelsError(f"{where}: a class name must be 1-{MAX_NAME_CHARS} characters, got {value!r}")
    return name


def read_label_file(path: str | Path) -> dict[str, str]:
    """{image key: class name} from a .csv or .json label file (LabelsError with the line or entry at fault)."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: no such label file (a .csv or .json mapping images to class names)")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise LabelsError(f"{path}: label file over {MAX_FILE_BYTES >> 20} MB")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelsError(f"{path}: not UTF-8 text ({e.reason})") from None
    pairs: list[tuple[Any, Any, str]] = []
    if path.suffix.lower() == ".json":
        try:
            body = json.loads(text)
        except json.JSONDecodeError as e:
            raise LabelsError(f"{path}: not valid JSON ({e})") from None
        items = body.items() if isinstance(body, dict) else body if isinstance(body, list) else None
        if items is None:
            raise LabelsError(f"{path}: expected an object {{image: class}} or a list of [image, class] pairs")
        for i, item in enumerate(items):
            if not (isinstance(item, (list, tuple)) and len(item) == 2):
                raise LabelsError(f"{path}: entry {i} is not an [image, class] pair: {item!r}")
            pairs.append((item[0], item[1], f"{path} entry {i}"))
    elif path.suffix.lower() == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        for lineno, row in enumerate(rows, 1):
            if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            if len(row) != 2:
                raise LabelsError(f"{path} line {lineno}: expected two columns (image,class), got {len(row)}")
            if lineno == 1 and row[0].strip().lower() in _HEADER_KEYS and row[1].strip().lower() in _HEADER_VALUES:
                continue
            pairs.append((row[0], row[1], f"{path} line {lineno}"))
    else:
        raise LabelsError(f"{path}: label files are .csv or .json")
    mapping: dict[str, str] = {}
    for key, value, where in pairs:
        if not isinstance(key, str) or not key.strip():
            raise LabelsError(f"{where}: the image must be a path, URL or sha256, got {key!r}")
        key, name = key.strip(), _clean_name(value, where)
        if mapping.get(key, name) != name:
            raise LabelsError(f"{where}: {key} has two classes ({mapping[key]!r} and {name!r})")
        mapping[key] = name
    if not mapping:
        raise LabelsError(f"{path}: no labels in the file")
    if len(set(mapping.values())) > MAX_CLASSES:
        raise LabelsError(f"{path}: more than {MAX_CLASSES} classes")
    return mapping


def class_names(names: Iterable[str]) -> list[str]:
    """The class list: distinct names in sorted order (a name's index is its class label)."""
    return sorted(set(names))


def match_labels(keys: dict[str, list[str]], mapping: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    """Per image (sha256 -> the names it is known by), its class; plus the label-file keys that named no image.

    A key matches a name exactly, or as a path (both resolved), so `./photos/a.jpg` finds `photos/a.jpg`.
    """
    def as_path(s: str) -> str | None:
        if "://" in s and not s.startswith("file://"):
            return None
        try:
            return str(Path(s.removeprefix("file://")).expanduser().resolve())
        except (OSError, ValueError, RuntimeError):
            return None

    by_path = {p: k for k in mapping if (p := as_path(k))}
    found: dict[str, str] = {}
    used: set[str] = set()
    for sha, names in keys.items():
        for n in names:
            k = n if n in mapping else by_path.get(as_path(n) or "")
            if k is not None:
                if sha in found and found[sha] != mapping[k]:
                    raise LabelsError(f"image {sha[:12]} is labelled both {found[sha]!r} and {mapping[k]!r} "
                                      f"(under different names)")
                found[sha] = mapping[k]
                used.add(k)
    return found, set(mapping) - used


def image_keys(sources: list[dict[str, Any]], sha256: str) -> list[str]:
    """Every name an image goes by: its sha256, and per source its URL, page URL and original file path."""
    keys = [sha256]
    for s in sources:
        keys += [u for u in (s.get("image_url"), s.get("page_url")) if u]
        extra = s.get("extra") or {}
        if isinstance(extra, dict) and extra.get("path"):
            keys.append(str(extra["path"]))
            if extra.get("root"):
                keys.append(str(Path(extra["root"]) / extra["path"]))
    return keys


def original_name(sources: list[dict[str, Any]]) -> str | None:
    """How a person knows an image: the file path it was imported from, else the URL it was fetched from."""
    for s in sources:
        extra = s.get("extra") or {}
        if isinstance(extra, dict) and extra.get("path"):
            return str(Path(extra["root"]) / extra["path"]) if extra.get("root") else str(extra["path"])
    for s in sources:
        if s.get("image_url"):
            return str(s["image_url"])
    return None


def dataset_class_names(dataset: str | Path) -> list[str] | None:
    """`class_names` of a dataset's dataset.json (zip or folder), or None when it has none or is gone."""
    p = Path(dataset)
    try:
        if p.is_file() and zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                if "dataset.json" not in zf.namelist() or zf.getinfo("dataset.json").file_size > MAX_FILE_BYTES:
                    return None
                raw = zf.read("dataset.json")
        elif (p / "dataset.json").is_file():
            raw = (p / "dataset.json").read_bytes()
        else:
            return None
        names = json.loads(raw).get("class_names")
    except (OSError, ValueError, AttributeError, zipfile.BadZipFile):
        return None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return names
    return None


def model_class_names(meta: dict[str, Any]) -> list[str] | None:
    """The class names of a conditional model: recorded in its file, else read from the dataset it was trained on."""
    c_dim = int((meta.get("config") or {}).get("c_dim") or 0)
    prov = meta.get("provenance") or {}
    names = prov.get("class_names")
    if not names and prov.get("dataset"):
        names = dataset_class_names(prov["dataset"])
    if isinstance(names, list) and len(names) == c_dim and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def class_index(spec: str, names: list[str] | None, c_dim: int) -> int:
    """`--class` as an index: a class name of the model, or an index in [0, c_dim)."""
    if c_dim == 0:
        raise LabelsError(f"--class {spec}: the model is unconditional (trained without labels)")
    if names and spec in names:
        return names.index(spec)
    if spec.strip().isdigit() and int(spec) < c_dim:
        return int(spec)
    known = f"one of: {', '.join(names)}" if names else f"an index in [0, {c_dim})"
    raise LabelsError(f"--class {spec!r}: the model has {c_dim} classes; use {known}")
