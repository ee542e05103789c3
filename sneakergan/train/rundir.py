"""Run folders: what one training run owns, created new and never written over.

```
RUN/
  log.jsonl                 one JSON line per tick (kimg, speed, losses, p, r_t, metrics)
  reals.png                 a grid of training images, written at the start
  grid-000200.png           G_ema samples at each snapshot (fixed seeds), grid-latest.png the newest
  snapshot-000200.{safetensors,json}   numbered checkpoints, the newest `keep` kept
  checkpoint-latest.{...}   hard links to the newest snapshot
  .lock                     held (flock) while a process trains here
```
A new run goes into a folder that does not exist or is empty (`RunDir.create`); `--outdir PARENT` picks the
next number like the reference tools (`PARENT/00003-NAME`). Only `--resume` continues in an existing folder
(`RunDir.open_existing`). Temp files left by writes that were killed are removed when a run starts there.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable

from ..errors import UserError

LATEST = "checkpoint-latest"
LOG_NAME = "log.jsonl"
REALS = "reals.png"
LOCK = ".lock"
LOCK_WAIT_S = 15.0  # how long a new trainer waits for a lock left by orphaned data-loader workers
_NUMBERED = re.compile(r"^(\d{5,})-")
_TEMP = re.compile(r"^\..+\.tmp$")


class RunDirError(UserError):
    """A run folder that cannot be used as asked (exists, is busy, or holds no run)."""


def nimg_tag(nimg: int) -> str:
    """File-name tag of a point in training: '000200' at 200 kimg, '000000-064' at 64 images."""
    return f"{nimg // 1000:06d}" + (f"-{nimg % 1000:03d}" if nimg % 1000 else "")


def tag_nimg(tag: str) -> int | None:
    """Inverse of nimg_tag ('000000-064' -> 64); None for anything else."""
    m = re.fullmatch(r"(\d{6})(?:-(\d{3}))?", tag)
    return int(m.group(1)) * 1000 + int(m.group(2) or 0) if m else None


def numbered_path(parent: str | Path, name: str) -> Path:
    """PARENT/NNNNN-NAME with NNNNN one above the highest number already there (as the reference tools do)."""
    parent = Path(parent)
    if parent.exists() and not parent.is_dir():
        raise RunDirError(f"--outdir {parent}: not a folder")
    used = [int(m.group(1)) for p in (parent.iterdir() if parent.is_dir() else ()) if (m := _NUMBERED.match(p.name))]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"
    return parent / f"{max(used, default=-1) + 1:05d}-{safe}"


def holds_anything(path: Path) -> bool:
    """True for a file, or a folder with anything in it besides a run lock."""
    return path.exists() and (not path.is_dir() or any(p.name != LOCK for p in path.iterdir()))


def check_new(path: str | Path) -> Path:
    """The folder a new run may be written to, or a one-line refusal (nothing of an existing run is touched)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path}: exists and is not a folder")
    if holds_anything(path):
        what = "a training run" if (path / LOG_NAME).exists() or any(path.glob("snapshot-*.json")) else "files"
        raise RunDirError(f"--out {path} already holds {what}; continue it with --resume {path}, or choose a new "
                          "--out (or --outdir to number runs)")
    return path


@dataclass
class RunDir:
    """The files of one run folder; only the training process of rank 0 writes through it."""

    path: Path
    _lock: IO[Any] | None = field(default=None, repr=False)

    # -- creating / opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path) -> "RunDir":
        """Make a new, empty run folder (refused when it holds anything) and lock it."""
        path = check_new(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.lock()
        check_new(path)  # someone may have written between the check and the lock
        return run

    @classmethod
    def open_existing(cls, path: str | Path) -> "RunDir":
        """An existing run folder being resumed in place: locked, stale temp files removed."""
        run = cls(Path(path))
        run.path.mkdir(parents=True, exist_ok=True)
        run.lock()
        run.remove_stale_temps()
        return run

    def lock(self) -> None:
        """Hold an exclusive lock for this process's lifetime: two runs in one folder would corrupt each other."""
        f = open(self.path / LOCK, "a")
        # Data-loader workers are forked with the lock's descriptor: after a kill -9 of the trainer they hold it
        # until they notice (within about 5 s), so a resume right after a kill waits that long before giving up.
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    f.close()
                    raise RunDirError(f"{self.path}: another training process is using this run folder") from None
                time.sleep(0.2)
        self._lock = f

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def discard(self) -> None:
        """Remove a new run that failed before its first checkpoint: the files a run writes, then the folder if
        that leaves it empty (so the same --out can be used again; nothing else is touched)."""
        ours = [self.log_path, self.path / REALS, self.path / "grid-latest.png", *self.path.glob("grid-*.png"),
                *(p for p in self.path.iterdir() if _TEMP.match(p.name))]
        for p in ours:
            p.unlink(missing_ok=True)
        self.close()
        (self.path / LOCK).unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            pass

    def remove_stale_temps(self) -> list[Path]:
        """Delete temp files of killed writes (`.NAME.XXXX.tmp`); safe because the folder is locked."""
        removed = []
        for p in self.path.iterdir():
            if _TEMP.match(p.name) and p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    # -- paths ---------------------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.path / LOG_NAME

    @property
    def latest(self) -> Path:
        return self.path / LATEST

    def snapshot(self, nimg: int) -> Path:
        return self.path / f"snapshot-{nimg_tag(nimg)}"

    def grid(self, nimg: int) -> Path:
        return self.path / f"grid-{nimg_tag(nimg)}.png"

    def snapshots(self) -> list[tuple[int, Path]]:
        """(nimg, stem) of the numbered snapshots present, oldest first."""
        out = []
        for js in self.path.glob("snapshot-*.json"):
            n = tag_nimg(js.stem[len("snapshot-"):])
            if n is not None:
                out.append((n, js.with_suffix("")))
        return sorted(out)

    # -- writing ---------------------------------------------------------------------------------------------

    def publish_latest(self, snap: Path) -> Path:
        """checkpoint-latest := snap: hard links (no second write of the weights) renamed into place, weights first."""
        from ..modelfile import model_paths

        for src, dst in zip(model_paths(snap), model_paths(self.latest)):
            tmp = dst.with_name(f".{dst.name}.link.tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(src, tmp)
            except OSError:
                import shutil

                shutil.copy2(src, tmp)
            os.replace(tmp, dst)
        return self.latest

    def prune(self, keep: int) -> None:
        """Delete all but the newest `keep` numbered snapshots (the JSON first, so no half is left looking valid)."""
        from ..modelfile import model_paths

        snaps = self.snapshots()
        for _, stem in snaps[: max(len(snaps) - keep, 0)]:
            st, js = model_paths(stem)
            js.unlink(missing_ok=True)
            st.unlink(missing_ok=True)

    def save_image(self, image, path: Path) -> None:
        """Write a PIL image atomically."""
        from ..fileio import atomic_write

        atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))

    def append_log(self, row: dict[str, Any]) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def trim_log(self, cur_nimg: int) -> None:
        """After a resume, drop log lines written past the checkpoint (they will be produced again)."""
        rows = read_log(self.path)
        keep = [r for r in rows if r.get("cur_nimg", 0) <= cur_nimg]
        if len(keep) != len(rows) or (self.log_path.exists() and len(rows) != _count_lines(self.log_path)):
            from ..fileio import atomic_write

            atomic_write(self.log_path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in keep)))


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def read_log(run_dir: str | Path) -> list[dict]:
    """All JSON lines of RUN/log.jsonl (skipping a torn last line after a kill)."""
    path = Path(run_dir) / LOG_NAME
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def checkpoint_candidates(path: str | Path) -> tuple[Path, list[Path]]:
    """(the run folder, checkpoint stems to try in order) for a run folder or a checkpoint path."""
    from ..modelfile import model_paths

    p = Path(path)
    if p.is_dir():
        folder, first = p, [p / LATEST]
    else:
        folder, first = p.parent, [model_paths(p)[0].with_suffix("")]
    rest = [stem for _, stem in reversed(RunDir(folder).snapshots())] if p.is_dir() or first[0].name == LATEST else []
    seen: list[Path] = []
    for c in first + rest:
        if c not in seen:
            seen.append(c)
    return folder, seen


def open_checkpoint(path: str | Path, nets: Iterable[str] = ("G", "D", "G_ema"), device: Any = "cpu"):
    """Find and load a checkpoint once: the folder's checkpoint-latest, else the newest numbered snapshot that loads.

    A kill between the two renames of checkpoint-latest can leave its halves from different snapshots; the
    hash check catches that and the newest whole snapshot is used. Returns a modelfile.Checkpoint.
    """
    from ..modelfile import ModelFileError, load_checkpoint, model_paths, read_meta

    folder, candidates = checkpoint_candidates(path)
    errors = []
    for cand in candidates:
        if not model_paths(cand)[1].exists():
            continue
        try:
            have = read_meta(cand).get("nets", [])  # the JSON half only: which networks to build
            return load_checkpoint(cand, nets=[n for n in nets if n in have], device=device, verify=True)
        except ModelFileError as e:
            errors.append(str(e))
    if errors:
        raise RunDirError(f"no loadable checkpoint in {folder}: {errors[0]}")
    raise RunDirError(f"{path}: no checkpoint found (expected {LATEST}.safetensors/.json or a model file)")
