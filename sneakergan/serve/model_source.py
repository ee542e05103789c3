"""Which model the site serves: an explicit file, the shipped demo model, or a clearly labelled fallback.

`sneakergan serve` with no arguments must come up on a fresh checkout even before the demo model exists, so the
lookup ends in a fallback that always works (the reference fixture imported, or a seeded random `tiny` generator),
and the page says so in a banner.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_NAME = "demo64"
NVLABS_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "nvlabs" / "nvlabs-tiny.pkl"


@dataclass(frozen=True)
class ModelSource:
    """A model file to serve and, when it is not the real demo model, why (shown as a banner)."""

    path: Path
    banner: str | None = None

    @property
    def is_fallback(self) -> bool:
        return self.banner is not None


def default_cache_dir() -> Path:
    """Where fallback models are built: $SNEAKERGAN_CACHE, else ~/.cache/sneakergan."""
    env = os.environ.get("SNEAKERGAN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "sneakergan"


def _exists(stem: Path) -> bool:
    from ..modelfile import model_paths

    return all(p.exists() for p in model_paths(stem))


def find_model(model: Path | None = None, models_dir: Path | None = None, cache_dir: Path | None = None,
               runs_dir: Path | None = None) -> ModelSource:
    """Resolve the model to serve.

    Order: `model` when given (any model file, imported reference models included); models/demo64; any other
    models/demo*.safetensors; the newest training snapshot under runs/ (a model in progress); a fallback built
    once into `cache_dir` (the reference fixture imported, else a seeded random `tiny` generator). Everything
    after models/demo64 carries a banner.
    """
    if model is not None:
        return ModelSource(Path(model))
    models_dir = Path(models_dir) if models_dir is not None else REPO_ROOT / "models"
    demo = models_dir / DEMO_NAME
    if _exists(demo):
        return ModelSource(Path(f"{demo}.safetensors"))
    others = sorted(p for p in models_dir.glob("demo*.safetensors") if _exists(p))
    if others:
        return ModelSource(others[-1], banner=f"The demo model {DEMO_NAME} is not here yet: serving {others[-1].name}.")
    snapshot = newest_snapshot(Path(runs_dir) if runs_dir is not None else REPO_ROOT / "runs")
    if snapshot is not None:
        path, kimg = snapshot
        return ModelSource(path, banner=f"The demo model {DEMO_NAME} is not here yet: serving a training snapshot in "
                                        f"progress ({path.parent.name}/{path.name}, {kimg:g} kimg).")
    return build_fallback(cache_dir or default_cache_dir())


def newest_snapshot(runs_dir: Path) -> tuple[Path, float] | None:
    """The most recently written model file with a G_ema under runs/*/, and its kimg."""
    from ..modelfile import ModelFileError, read_meta

    found = []
    for p in runs_dir.glob("*/*.safetensors") if runs_dir.is_dir() else []:
        try:
            meta = read_meta(p)
        except ModelFileError:
            continue
        if "G_ema" in meta.get("nets", []) and _exists(p):
            found.append((p.stat().st_mtime, p, float(meta.get("state", {}).get("kimg") or 0)))
    if not found:
        return None
    _, path, kimg = max(found)
    return path, kimg


def build_fallback(cache_dir: Path) -> ModelSource:
    """A small model that needs no training: the reference fixture if the checkout has it, else random weights."""
    from ..modelfile import ModelFileError, read_meta

    cache_dir = Path(cache_dir)
    imported = cache_dir / "fallback-nvlabs-tiny"
    random_tiny = cache_dir / "fallback-random-tiny"
    note = ("No trained demo model found (models/demo64.safetensors): serving an untrained {what}, so the "
            "sneakers look like noise. Train or download the demo model and restart.")
    for stem, what in ((imported, "reference test fixture"), (random_tiny, "random 'tiny' generator")):
        if _exists(stem):
            try:
                read_meta(stem)
                return ModelSource(Path(f"{stem}.safetensors"), banner=note.format(what=what))
            except ModelFileError:
                pass  # a half-written cache entry: rebuild below
    if NVLABS_FIXTURE.exists():
        try:
            from ..interop.nvlabs import import_snapshot

            return ModelSource(import_snapshot(NVLABS_FIXTURE, imported), banner=note.format(what="reference test fixture"))
        except Exception:  # noqa: BLE001 - any import problem falls through to the random model, which cannot fail
            pass
    return ModelSource(build_random_tiny(random_tiny), banner=note.format(what="random 'tiny' generator"))


def build_random_tiny(stem: Path, seed: int = 0) -> Path:
    """Write a `tiny` generator with seeded random weights as a serving model file (tests and fallbacks)."""
    import torch

    from ..modelfile import save_checkpoint
    from ..nets import Generator, preset

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cfg = preset("tiny")
        G = Generator(cfg).eval()
    return save_checkpoint(stem, cfg, {"G_ema": G}, provenance={"note": "random weights (serve fallback)"})
