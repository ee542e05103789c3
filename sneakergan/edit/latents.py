"""Projected latents stored beside a model: NAME.latents/<id>.safetensors (ws [num_ws, w_dim] + optional noise maps).

The id is a content hash of the ws, so it is stable, URL-safe and the same projection saved twice is one file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from ..errors import UserError

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class LatentError(UserError):
    """A latent id is unknown or its file is unreadable / does not fit the model."""


def latents_dir(model_path: str | Path) -> Path:
    """NAME.latents/ beside NAME.safetensors / NAME.json."""
    p = Path(model_path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".latents")


class LatentStore:
    """Save and load projected latents (a folder of small safetensors files)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, latent_id: str) -> Path:
        if not isinstance(latent_id, str) or not _ID_RE.fullmatch(latent_id) or ".." in latent_id:
            raise LatentError(f"bad latent id {latent_id!r}")
        return self.root / f"{latent_id}.safetensors"

    def save(self, ws: torch.Tensor, noise: dict[str, torch.Tensor] | None = None,
             info: dict[str, Any] | None = None) -> str:
        """Store ws [num_ws, w_dim] (+ noise maps by layer name); returns the latent id."""
        ws = ws.detach().float().cpu().contiguous()
        if ws.ndim != 2:
            raise LatentError(f"ws must be [num_ws, w_dim], got shape {tuple(ws.shape)}")
        latent_id = "p" + hashlib.sha256(ws.numpy().tobytes()).hexdigest()[:15]
        tensors = {"ws": ws.clone()}
        for name, t in (noise or {}).items():
            tensors[f"noise.{name}"] = t.detach().float().cpu().contiguous().clone()
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path(latent_id)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.root)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"info": json.dumps(info or {}, default=str)})
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return latent_id

    def load(self, latent_id: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(ws [num_ws, w_dim], noise maps by layer name)."""
        p = self.path(latent_id)
        if not p.exists():
            raise LatentError(f"unknown latent {latent_id!r} (no {p.name} in {self.root})")
        try:
            t = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as e:
            raise LatentError(f"{p}: unreadable latent file ({e})") from None
        if "ws" not in t:
            raise LatentError(f"{p}: holds no ws")
        noise = {k[len("noise."):]: v for k, v in t.items() if k.startswith("noise.")}
        return t["ws"], noise

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.safetensors")) if self.root.exists() else []
