"""The prepare pipeline: a store of raw images in, a clean StyleGAN2-ADA dataset zip and a report out.

Two phases, so memory stays bounded whatever the store size:

1. Per image, in a process pool fed by a streamed, back-pressured iterator: decode safely (`validate`),
   find and centre the shoe (`normalise`), check it is plausibly one shoe in side view, measure what the
   later decisions need (pHash, shape hash, colour thumbnail, design features, sharpness) and write the
   normalised PNG to STORE/prepared/<sha256>.png. Only these few hundred bytes per image come back.
2. Over the whole set, on those small records: human marks, near-duplicate removal, the curated subset,
   boringness, the per-silhouette cap. Then the kept PNGs are streamed into the zip.

Duplicates are looked for in the normalised frame: once every shoe is cropped, centred, scaled and turned
toe-left, a resized, re-encoded, slightly cropped or mirrored copy of a photo hashes (almost) the same.

Every image's outcome (status + reason, boringness, features, silhouette group) is written to the
manifest's `prepared` table, which doubles as a cache: a re-run with the same per-image settings reuses
phase 1 for images already done (e.g. exporting favourites after a curate session costs seconds), and
a killed run picks up where it stopped (phase-1 rows are flushed every 500 images).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from sneakergan.fileio import atomic_write_bytes
from sneakergan.prepare.normalise import NormaliseConfig

# Bump when phase 1's output changes meaning, so cached rows from older code are recomputed.
PIPELINE_VERSION = 2

SUBSETS = ("all", "favourites", "keep")
LABELS = ("none", "silhouette")  # or the path of a label file (sneakergan.labels)

# Outcomes, in the order the report lists them. Per-image codes come from phase 1, set codes from phase 2.
PER_IMAGE_CODES = ("not_image", "decode_error", "too_many_pixels", "too_small", "unsupported_mode", "missing",
                   "error", "too_little_foreground", "extreme_aspect", "several_objects")
SET_CODES = ("marked_reject", "duplicate", "not_in_subset", "boring", "silhouette_cap", "unlabelled")
INFO_KEYS = ("status", "reason", "fallback", "flipped", "facing", "foreground", "aspect", "objects")


@dataclass(frozen=True)
class PrepareConfig:
    """Everything `sneakergan prepare` can be told. Per-image settings feed the cache key."""

    resolution: int = 256
    min_side: int = 128
    max_pixels: int = 40_000_000
    flip: bool = True                     # flip so the toe points left
    margin: float = 0.06
    min_foreground: float = 0.03          # shoe pixels / image pixels below this: not a product shot
    aspect_range: tuple[float, float] = (0.9, 4.0)  # shoe box width / height of a side view
    dedupe_threshold: int = 8             # pHash bits
    colour_tolerance: float = 6.0         # dedupe.thumb_distance (0-255) still counted as a duplicate
    silhouette_threshold: int = 6         # shape-hash bits
    max_per_silhouette: int = 0           # 0: no cap
    keep_boring: bool = False
    boring_threshold: float = 0.7
    subset: str = "all"
    labels: str = "none"                  # none | silhouette | path of a CSV/JSON label file
    workers: int = 2
    contact_sheet_size: int = 48          # tiles per contact sheet

    def normalise_config(self) -> NormaliseConfig:
        return NormaliseConfig(resolution=self.resolution, margin=self.margin, flip_to_left=self.flip)

    def cache_key(self) -> str:
        """Hash of the settings phase 1 depends on (not the set-level ones)."""
        per_image = {"v": PIPELINE_VERSION, "n": asdict(self.normalise_config()), "min_side": self.min_side,
                     "max_pixels": self.max_pixels, "min_fg": self.min_foreground, "aspect": self.aspect_range}
        return hashlib.sha1(json.dumps(per_image, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(slots=True)
class Record:
    """What phase 1 learnt about one image: small, so 100k of them fit in memory easily."""

    sha256: str
    status: str
    reason: str | None = None
    width: int | None = None
    height: int | None = None
    design: dict[str, float] | None = None   # boring.design_features of the normalised image
    phash: int = 0
    shape: int = 0
    thumb: np.ndarray | None = None          # 8x8x3 uint8 colour layout
    colour: np.ndarray | None = None         # 64-bin colour histogram of the shoe
    sharpness: float = 0.0
    long_side: int = 0                       # of the shoe's box in the original, in pixels
    area: int = 0
    encoding: float = 100.0                  # estimated encoding quality (JPEG tables; lossless 100)
    info: dict = field(default_factory=dict)  # INFO_KEYS: phase 1's own status and what normalise saw
    boring: float | None = None
    group: str | None = None                 # silhouette group: the sha256 of its first member

    @property
    def normalised(self) -> bool:
        return self.design is not None

    def quality(self) -> tuple[float, float]:
        """Which copy of a duplicate wins: the largest after discounting compression (a JPEG at quality 70
        counts as 85% of its size, so a re-saved copy loses to its source), then the sharpest."""
        return (self.long_side * (0.5 + 0.5 * self.encoding / 100.0), self.sharpness)

    def features_json(self, key: str) -> str | None:
        """The `prepared.features` column: design features at the top (what boring.py reads) plus
        everything phase 1 measured under "prepare", so a re-run can skip this image."""
        if not self.normalised:
            return None
        prep = {"key": key, "phash": f"{self.phash:016x}", "shape": f"{self.shape:016x}",
                "thumb": self.thumb.tobytes().hex(), "colour": [round(float(c), 5) for c in self.colour],
                "sharpness": self.sharpness, "long_side": self.long_side, "area": self.area,
                "encoding": self.encoding, **self.info}
        return json.dumps({**self.design, "prepare": prep})

    @classmethod
    def from_cache(cls, sha256: str, text: str, key: str, width: int | None, height: int | None) -> Record | None:
        """Rebuild a phase-1 record from a `prepared.features` value, or None if it is stale or foreign."""
        try:
            d = json.loads(text)
            p = d.pop("prepare")
            if p.get("key") != key:
                return None
            info = {k: p[k] for k in INFO_KEYS}
            return cls(sha256, p["status"], p["reason"], width, height, design=d, phash=int(p["phash"], 16),
                       shape=int(p["shape"], 16),
                       thumb=np.frombuffer(bytes.fromhex(p["thumb"]), np.uint8).reshape(8, 8, 3),
                       colour=np.asarray(p["colour"], np.float32), sharpness=float(p["sharpness"]),
                       long_side=int(p["long_side"]), area=int(p["area"]),
                       encoding=float(p["encoding"]), info=info)
        except (KeyError, ValueError, TypeError, AttributeError, json.JSONDecodeError):
            return None


@dataclass(frozen=True)
class ImageTask:
    sha256: str
    path: str | None
    width: int | None
    height: int | None
    cached: str | None            # prepared.features of an earlier run, if any
    prepared_dir: str
    cfg: PrepareConfig


def plausibility(info: dict, cfg: PrepareConfig) -> tuple[str, str | None]:
    """Is this plausibly a single shoe in side view? ('ok', note) or (code, reason)."""
    if info["fallback"]:
        return "ok", "background not uniform: whole image used"
    lo, hi = cfg.aspect_range
    if info["foreground"] < cfg.min_foreground:
        return "too_little_foreground", f"the object covers {info['foreground']:.1%} of the image " \
                                         f"(under {cfg.min_foreground:.0%})"
    if info["objects"] > 1:
        return "several_objects", f"{info['objects']} separate large objects (a pair, a box, a collage?)"
    if not lo <= info["aspect"] <= hi:
        return "extreme_aspect", f"object box is {info['aspect']:.2f}:1 (width:height); a side view is " \
                                 f"between {lo}:1 and {hi}:1"
    return "ok", None


def process_image(task: ImageTask) -> Record:
    """Phase 1 for one image (runs in a worker). Never raises: failures become a status and reason."""
    from sneakergan.prepare.boring import design_features
    from sneakergan.prepare.dedupe import phash_int, thumbnail
    from sneakergan.prepare.normalise import normalise, sharpness
    from sneakergan.prepare.silhouette import colour_descriptor, shape_hash
    from sneakergan.prepare.validate import decode

    cfg = task.cfg
    png = Path(task.prepared_dir) / f"{task.sha256}.png"
    try:
        if task.cached:
            rec = Record.from_cache(task.sha256, task.cached, cfg.cache_key(), task.width, task.height)
            if rec is not None and png.exists():
                return rec
        if task.path is None:
            return Record(task.sha256, "missing", "no stored file for this image", task.width, task.height)
        # Decode big JPEGs at reduced scale, keeping at least twice the output size (then LANCZOS down).
        dec = decode(task.path, min_side=cfg.min_side, max_pixels=cfg.max_pixels, draft=2 * cfg.resolution)
        if dec.status != "ok":
            return Record(task.sha256, dec.status, dec.reason, dec.width, dec.height)
        n = normalise(dec.image, cfg.normalise_config())
        left, top, right, bottom = n.bbox
        info = {"fallback": n.fallback, "flipped": n.flipped, "facing": n.facing,
                "foreground": round(n.foreground, 5), "aspect": round(n.aspect, 4), "objects": n.objects}
        status, reason = plausibility(info, cfg)
        info["status"], info["reason"] = status, reason or dec.reason
        rec = Record(task.sha256, status, info["reason"], dec.width, dec.height,
                     design=design_features(n.image), phash=phash_int(n.image), shape=shape_hash(n.mask),
                     thumb=thumbnail(n.image), colour=colour_descriptor(n.image, n.mask),
                     sharpness=round(sharpness(n.image), 3),
                     long_side=round(max(right - left, bottom - top) * dec.scale),
                     area=round((right - left) * (bottom - top) * dec.scale ** 2),
                     encoding=round(dec.quality, 1), info=info)
        _write_png(png, n.image)
        return rec
    except Exception as e:  # one odd image must never stop a 100k-image run
        return Record(task.sha256, "error", f"{type(e).__name__}: {e}", task.width, task.height)


def _write_png(path: Path, img: Image.Image) -> None:
    from sneakergan.prepare.export import png_bytes

    atomic_write_bytes(path, png_bytes(img))


# ------------------------------------------------------------------------------------------------------
# Phase 1 driver: streamed, back-pressured pool


Progress = Callable[[str, int, "int | None"], None]  # (stage, advance, total)


def iter_records(store_root: Path, cfg: PrepareConfig, progress: Progress | None = None) -> Iterator[Record]:
    """Run phase 1 over every 'ok' image of the store, yielding records as they finish (any order).

    The pool's feeder thread pulls tasks from a generator that blocks once `in_flight` tasks are out, so
    neither the task queue nor the result queue grows with the store size.
    """
    from multiprocessing import get_context

    from sneakergan.collect.store import Store

    prepared_dir = store_root / "prepared"
    prepared_dir.mkdir(exist_ok=True)
    workers = max(1, cfg.workers)
    chunk = 4
    in_flight = threading.BoundedSemaphore(workers * chunk * 4)
    stop = threading.Event()

    def tasks() -> Iterator[ImageTask]:
        # Runs in the pool's feeder thread: its own connection, so the main thread can write meanwhile.
        with Store.open(store_root, create=False) as st:
            conn = sqlite3.connect(f"file:{store_root / 'manifest.sqlite'}?mode=ro", uri=True, timeout=60)
            try:
                for row in st.iter_images("ok"):
                    while not in_flight.acquire(timeout=0.2):
                        if stop.is_set():
                            return
                    cached = conn.execute("SELECT features FROM prepared WHERE sha256 = ?",
                                          (row["sha256"],)).fetchone()
                    path = str(store_root / row["path"]) if row["path"] else None
                    yield ImageTask(row["sha256"], path, row["width"], row["height"],
                                    cached[0] if cached else None, str(prepared_dir), cfg)
            finally:
                conn.close()

    if workers == 1:
        results: Iterator[Record] = map(process_image, tasks())
        pool = None
    else:
        # fork on Linux: workers inherit the imported modules (start-up in milliseconds, not seconds).
        pool = get_context("fork" if sys.platform == "linux" else "spawn").Pool(workers)
        results = pool.imap_unordered(process_image, tasks(), chunksize=chunk)
    try:
        for rec in results:
            in_flight.release()
            if progress:
                progress("normalise", 1, None)
            yield rec
    finally:
        stop.set()
        if pool is not None:
            pool.terminate()
            pool.join()


# ------------------------------------------------------------------------------------------------------
# Phase 2: set-level decisions


@dataclass
class Decision:
    """Phase 2's outcome: the kept records in export order plus what the report needs."""

    kept: list[Record]
    boring_model: str
    silhouette_groups: int
    model: object | None = None  # the fitted BoringModel, if any


def decide(records: list[Record], marks: dict[str, str], cfg: PrepareConfig) -> Decision:
    """Apply marks, dedupe, subset, boringness and the silhouette cap; sets each record's status/reason.

    Human marks outrank the machine: a rejected image is out whatever its score, and an image marked keep
    or favourite wins its duplicate group and passes the boringness filter and the silhouette cap.
    """
    from sneakergan.prepare import boring
    from sneakergan.prepare.dedupe import dedupe
    from sneakergan.prepare.silhouette import cap_groups, group_silhouettes

    records.sort(key=lambda r: r.sha256)
    liked = {sha for sha, m in marks.items() if m in ("keep", "favourite")}

    # Boringness for every normalised image, fitted on the person's marks once there are enough.
    model, model_info = None, "default score (boring.boringness)"
    labels = boring.training_labels(marks)
    train = [(r.design, labels[r.sha256]) for r in records if r.normalised and r.sha256 in labels]
    n_boring = sum(1 for _, y in train if y)
    if n_boring >= 5 and len(train) - n_boring >= 5:
        model = boring.BoringModel.fit([f for f, _ in train], [y for _, y in train])
        model_info = f"fitted on {len(train)} curated marks ({n_boring} rejected)"
    for r in records:
        if r.normalised:
            r.boring = round(boring.score(r.design, model), 4)

    alive = [r for r in records if r.status == "ok"]
    for r in alive:
        if marks.get(r.sha256) == "reject":
            r.status, r.reason = "marked_reject", "marked reject while curating"
    alive = [r for r in alive if r.status == "ok"]

    result = dedupe([r.phash for r in alive],
                    [(float(r.sha256 in liked),) + r.quality() for r in alive],
                    threshold=cfg.dedupe_threshold, thumbs=[r.thumb for r in alive],
                    colour_tolerance=cfg.colour_tolerance)
    for i, r in enumerate(alive):
        w = result.winner[i]
        if w != i:
            r.status = "duplicate"
            r.reason = f"near-duplicate of {alive[w].sha256[:12]} ({result.distance[i]} bits apart)"
    alive = [r for r in alive if r.status == "ok"]

    if cfg.subset != "all":
        wanted = {"favourites": ("favourite",), "keep": ("keep", "favourite")}[cfg.subset]
        for r in alive:
            if marks.get(r.sha256) not in wanted:
                r.status, r.reason = "not_in_subset", f"not marked {' or '.join(wanted)}"
        alive = [r for r in alive if r.status == "ok"]

    if not cfg.keep_boring:
        for r in alive:
            if r.boring is not None and r.boring > cfg.boring_threshold and r.sha256 not in liked:
                r.status, r.reason = "boring", f"boringness {r.boring:.2f} is above {cfg.boring_threshold}"
        alive = [r for r in alive if r.status == "ok"]

    # Silhouette groups over every normalised image (so curate can filter by group), cap over survivors.
    shaped = [r for r in records if r.normalised]
    leaders = group_silhouettes([r.shape for r in shaped], cfg.silhouette_threshold)
    for r, lead in zip(shaped, leaders):
        r.group = shaped[lead].sha256
    if cfg.max_per_silhouette > 0:
        capped = [r for r in alive if r.sha256 not in liked]
        keep = cap_groups([r.group for r in capped], np.stack([r.colour for r in capped]) if capped else
                          np.zeros((0, 64), np.float32), cfg.max_per_silhouette,
                          priority=[r.sharpness for r in capped])
        for r, k in zip(capped, keep):
            if not k:
                r.status = "silhouette_cap"
                r.reason = f"silhouette group {r.group[:12]} is over {cfg.max_per_silhouette}; " \
                           f"more distinct colourways kept"
        alive = [r for r in alive if r.status == "ok"]
    return Decision(alive, model_info, len(set(leaders)), model)


# ------------------------------------------------------------------------------------------------------
# The whole run


@dataclass
class PrepareResult:
    """What a run did, for the CLI to print."""

    out: Path | None                 # None when nothing was kept (no zip written)
    kept: int
    counts: dict[str, int]           # outcome code -> images ('kept' included)
    collect_rejections: dict[str, int]
    report: dict[str, Path]
    boring_model: str
    silhouette_groups: int
    seconds: float
    class_names: list[str] | None = None  # with a label file
    labels_unmatched: int = 0              # label-file entries that named no kept image


def _write_prepared_rows(store_root: Path, records: list[Record], key: str) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = [(r.sha256, "ok" if r.status == "ok" else r.status, r.reason, r.boring, r.features_json(key), r.group,
             r.width, r.height, now) for r in records]
    conn = sqlite3.connect(store_root / "manifest.sqlite", timeout=60)
    try:
        with conn:
            conn.executemany("INSERT OR REPLACE INTO prepared (sha256, status, reason, boring, features, silhouette,"
                             " width, height, prepared_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    finally:
        conn.close()


def _sheet_tiles(records: list[Record], prepared_dir: Path, limit: int, caption: Callable[[Record], str]):
    from PIL import UnidentifiedImageError

    tiles = []
    for r in records[:limit]:
        p = prepared_dir / f"{r.sha256}.png"
        img = None
        if r.normalised and p.exists():
            try:
                with Image.open(p) as im:
                    img = im.convert("RGB")
            except (OSError, UnidentifiedImageError):
                img = None
        tiles.append((img, caption(r)))
    return tiles


def _spread(items: list, k: int) -> list:
    """Up to k items evenly spread over the list (a fair sample for a contact sheet)."""
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)] if k > 1 else items[:1]


def _round_robin(groups: dict[str, list], k: int) -> list:
    out: list = []
    queues = [list(v) for _, v in sorted(groups.items())]
    while len(out) < k and any(queues):
        for q in queues:
            if q and len(out) < k:
                out.append(q.pop(0))
    return out


def run_prepare(store_root: str | Path, out: str | Path, cfg: PrepareConfig,
                progress: Progress | None = None) -> PrepareResult:
    """Prepare the store at `store_root` into the dataset zip `out` (plus report files beside it)."""
    import time

    from sneakergan.collect.store import Store
    from sneakergan.labels import original_name
    from sneakergan.prepare.export import contact_sheet, report_paths, write_dataset_zip, write_report

    t0 = time.perf_counter()
    store_root, out = Path(store_root), Path(out)
    with Store.open(store_root, create=False) as store:
        counts0 = store.counts()
        marks = store.latest_marks()
    if progress:
        progress("normalise", 0, counts0["ok"])
    key = cfg.cache_key()
    records: list[Record] = []
    batch: list[Record] = []
    for rec in iter_records(store_root, cfg, progress):
        records.append(rec)
        batch.append(rec)
        if len(batch) >= 500:  # a killed run resumes from the cache instead of starting over
            _write_prepared_rows(store_root, batch, key)
            batch = []
    _write_prepared_rows(store_root, batch, key)
    decision = decide(records, marks, cfg)
    _write_prepared_rows(store_root, records, key)

    kept = decision.kept
    prepared_dir = store_root / "prepared"
    rejected = [r for r in records if r.status != "ok"]
    # How a person knows each image (its original path or URL), for the report and for a label file.
    with Store.open(store_root, create=False) as store:
        sources = {r.sha256: store.sources_of(r.sha256) for r in kept + rejected}
    user = _user_labels(cfg.labels, kept, sources) if cfg.labels not in LABELS else None
    if user is not None:
        kept = [r for r in kept if r.status == "ok"]
        rejected = [r for r in records if r.status != "ok"]
    labels: dict[str, int] = {}
    if cfg.labels == "silhouette":
        sizes = Counter(r.group for r in kept)
        order = sorted(sizes, key=lambda g: (-sizes[g], g))
        labels = {g: i for i, g in enumerate(order)}

    def label_of(r: Record) -> int | None:
        if user is not None:
            return user.index[r.sha256]
        return labels[r.group] if cfg.labels == "silhouette" else None

    def images() -> Iterator[tuple[bytes, int | None]]:
        if progress:
            progress("export", 0, len(kept))
        for r in kept:
            data = (prepared_dir / f"{r.sha256}.png").read_bytes()
            yield data, label_of(r)
            if progress:
                progress("export", 1, None)

    names = write_dataset_zip(out, images(), with_labels=cfg.labels != "none",
                              class_names=user.names if user is not None else None) if kept else []
    paths = report_paths(out)
    if decision.model is not None:
        decision.model.save(paths["boring_model"])  # type: ignore[attr-defined]

    counts = Counter(r.status if r.status != "ok" else "kept" for r in records)
    ordered = {"kept": counts.pop("kept", 0)}
    for code in PER_IMAGE_CODES + SET_CODES:
        if counts.get(code):
            ordered[code] = counts.pop(code)
    ordered.update(sorted(counts.items()))
    collect_rejections = {k: v for k, v in counts0["images_by_status"].items() if k != "ok"}
    report = {
        "store": str(store_root), "dataset": str(out) if kept else None, "resolution": cfg.resolution,
        "settings": {k: v for k, v in asdict(cfg).items()},
        "counts": ordered, "collect_rejections": collect_rejections,
        "boring_model": decision.boring_model, "silhouette_groups": decision.silhouette_groups,
        "images": [[name, r.sha256, label_of(r)] for name, r in zip(names, kept)],
        # [sha256, outcome, reason, original path or URL]
        "rejected": [[r.sha256, r.status, r.reason, original_name(sources.get(r.sha256, []))] for r in rejected],
        **({"class_names": user.names, "labels_file": str(cfg.labels), "labels_unmatched": len(user.unmatched),
            "labels_unmatched_examples": sorted(user.unmatched)[:20]} if user is not None else {}),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_report(paths["json"], report)

    n = cfg.contact_sheet_size
    kept_tiles = _sheet_tiles(_spread(kept, n), prepared_dir, n,
                              lambda r: f"{r.boring:.2f}" if r.boring is not None else "")
    by_code: dict[str, list[Record]] = defaultdict(list)
    for r in rejected:
        by_code[r.status].append(r)
    rej_tiles = _sheet_tiles(_round_robin(by_code, n), prepared_dir, n, lambda r: r.status)
    contact_sheet(kept_tiles).save(paths["kept"])
    contact_sheet(rej_tiles).save(paths["rejected"])
    return PrepareResult(out if kept else None, len(kept), ordered, collect_rejections, paths,
                         decision.boring_model, decision.silhouette_groups, round(time.perf_counter() - t0, 2),
                         class_names=user.names if user is not None else None,
                         labels_unmatched=len(user.unmatched) if user is not None else 0)


@dataclass
class UserLabels:
    """Classes from a person's label file, for the kept images."""

    names: list[str]            # class names; a name's position is its label
    index: dict[str, int]       # sha256 -> class index
    unmatched: set[str]         # label-file keys that named no kept image


def _user_labels(path: str, kept: list[Record], sources: dict[str, list]) -> UserLabels:
    """Label the kept images from the file at `path`; kept images it does not name become 'unlabelled'."""
    from sneakergan.labels import class_names, image_keys, match_labels, read_label_file

    mapping = read_label_file(path)
    found, unmatched = match_labels({r.sha256: image_keys(sources[r.sha256], r.sha256) for r in kept}, mapping)
    for r in kept:
        if r.sha256 not in found:
            r.status, r.reason = "unlabelled", f"no class for it in {Path(path).name}"
    names = class_names(found.values())
    pos = {n: i for i, n in enumerate(names)}
    return UserLabels(names, {sha: pos[n] for sha, n in found.items()}, unmatched)
