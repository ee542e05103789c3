"""Crash-safe file writes shared by every stage: write a temporary file beside the target, then rename it.

A kill at any moment leaves either the old file or the new one under the final name, never half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, write: Callable[[str], None], fsync: bool = False) -> None:
    """Call `write(tmp_path)` to produce the content, then move it into place (mode 0644, like any shared file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes private files (and some writers recreate the file)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = False) -> None:
    """Write bytes crash-safely."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), fsync=fsync)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (model and weight files can be large)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
