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
DEMO_NAME = "demo64x48"
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

    Order: `model` when given (any model file, imported reference models included); models/demo64x48; any other
    models/demo*.safetensors; the newest training snapshot under runs/ (a model in progress); a fallback built
    once into `cache_dir` (the reference fixture imported, else a seeded random `tiny` generator). Everything
    after models/demo64x48 carries a banner.

    A model file that is found is checked with `check_model` before it is returned: a broken one is refused at
    start (ModelFileError, one line) instead of answering every request with a 500.
    """
    if model is not None:
        return _checked(ModelSource(Path(model)))
    models_dir = Path(models_dir) if models_dir is not None else REPO_ROOT / "models"
    demo = models_dir / DEMO_NAME
    if _exists(demo):
        return _checked(ModelSource(Path(f"{demo}.safetensors")))
    others = sorted(p for p in models_dir.glob("demo*.safetensors") if _exists(p))
    if others:
        return _checked(ModelSource(others[-1], banner=f"The demo model {DEMO_NAME} is not here yet: serving "
                                                       f"{others[-1].name}."))
    snapshot = newest_snapshot(Path(runs_dir) if runs_dir is not None else REPO_ROOT / "runs")
    if snapshot is not None:
        from ..modelfile import ModelFileError

        path, kimg = snapshot
        try:
            return _checked(ModelSource(path, banner=f"The demo model {DEMO_NAME} is not here yet: serving a "
                                                     f"training snapshot in progress ({path.parent.name}/"
                                                     f"{path.name}, {kimg:g} kimg)."))
        except ModelFileError:
            pass  # a snapshot nobody asked for by name: the fallback below serves instead
    return build_fallback(cache_dir or default_cache_dir())


def _checked(source: ModelSource) -> ModelSource:
    check_model(source.path)
    return source


def check_model(path: str | Path, device: str = "cpu") -> None:
    """Refuse a model the site cannot serve, with one ModelFileError line naming the file and the problem.

    Loads G_ema (which validates the config and every tensor), renders one image the way the site does, checks
    it is an RGB image of the model's size, and checks every direction of NAME.directions.json (if there is one):
    a vector of w_dim finite values, a finite sigma, a layer range inside the model, and one render with all
    of them applied. Costs one model load and two small renders.
    """
    import numpy as np

    from ..edit.directions import DirectionSet, DirectionsError, directions_path
    from ..edit.render import Renderer
    from ..edit.state import MAX_EDITS, EditState
    from ..generate import load_generator
    from ..modelfile import ModelFileError, model_paths

    weights, _ = model_paths(path)
    G = load_generator(weights, device)  # ModelFileError for anything wrong with the file itself
    if G.img_channels != 3:
        raise ModelFileError(f"{weights}: makes {G.img_channels}-channel images; the site serves RGB models only")
    if G.c_dim:
        raise ModelFileError(f"{weights}: is a conditional model ({G.c_dim} classes); the site serves "
                             "unconditional models only")
    dpath = directions_path(weights)
    directions = None
    if dpath.exists():
        try:
            directions = DirectionSet.load(dpath)
        except DirectionsError:
            directions = None  # unreadable: the engine computes SeFa directions instead (and says so)
        except (RecursionError, ValueError, TypeError, AttributeError) as e:  # what the loader does not catch
            raise ModelFileError(f"{dpath}: not a readable directions file ({type(e).__name__})") from None
    for d in directions or []:
        vec = np.asarray(d.vector)
        if vec.shape != (G.w_dim,) or not np.isfinite(vec).all():
            raise ModelFileError(f"{dpath}: direction {d.id!r} has {vec.size} values"
                                 f"{'' if np.isfinite(vec).all() else ' (not all finite)'}; the model's w has "
                                 f"{G.w_dim}")
        if isinstance(d.sigma, bool) or not isinstance(d.sigma, (int, float)) or not np.isfinite(d.sigma):
            raise ModelFileError(f"{dpath}: direction {d.id!r} has sigma {d.sigma!r}, not a finite number")
    try:
        renderer = Renderer(G, directions, model_id="check", cache_size=0)
        states = [EditState(model="check", seed=0, psi=0.7)]
        ids = [d.id for d in directions or []]
        for i in range(0, len(ids), MAX_EDITS):
            states.append(EditState(model="check", seed=0, psi=0.7,
                                    edits=tuple((did, 1.0) for did in ids[i:i + MAX_EDITS])))
        images = renderer.render_batch(states)
    except Exception as e:  # noqa: BLE001 - whatever breaks a render here would break every request
        raise ModelFileError(f"{weights}: cannot render an image ({type(e).__name__}: {_one_line(e)})") from None
    want = (G.img_height, G.img_width, 3)
    for img in images:
        if img.shape != want or img.dtype != np.uint8:
            raise ModelFileError(f"{weights}: renders {img.dtype} images of shape {img.shape}, expected uint8 {want}")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."


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
    note = ("No trained demo model found (models/" + DEMO_NAME + ".safetensors): serving an untrained {what}, so the "
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
