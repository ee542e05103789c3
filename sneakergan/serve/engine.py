"""What the routes need from the model: loading, edit states from URLs, rendering to image bytes, projection.

The engine owns no HTTP: app.py turns its errors (`EditStateError`, `BadInput`) into 4xx answers. Rendering
functions here run in worker threads (the render pool, the projection job runner), never on the event loop.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..edit.state import MAX_AMOUNT, MAX_EDITS, MAX_MIXES, PSI_RANGE, EditState, EditStateError
from .gallery import GalleryIndex, default_gallery_dir, load_index
from .images import encode_image
from .model_source import ModelSource

log = logging.getLogger("sneakergan.serve")

MIX_LEVELS = ("coarse", "middle", "fine")


class BadInput(ValueError):
    """A request parameter is malformed; the message is shown to the client as is."""


@dataclass(frozen=True)
class EngineConfig:
    """Model-side settings of the site."""

    psi: float = 0.7                   # truncation of plain seed images (home page, gallery)
    device: str = "cpu"
    precision: str = "fp32"             # auto | fp32 | bf16 | fp16 (sneakergan.precision) of every render
    gallery_dir: Path | None = None     # default: NAME.gallery beside the model
    latents_dir: Path | None = None     # default: NAME.latents beside the model
    project_steps: int = 150            # optimisation steps of a photo projection
    max_image_pixels: int = 40_000_000  # decompression-bomb limit for uploads
    direction_samples: int = 2000       # w samples for sigma when directions are computed on the fly


@dataclass
class Engine:
    """The loaded model and everything derived from it."""

    source: ModelSource
    config: EngineConfig
    G: Any
    model_id: str
    weights_sha256: str
    directions: Any                     # sneakergan.edit.directions.DirectionSet
    renderer: Any                       # sneakergan.edit.render.Renderer
    latents: Any                        # sneakergan.edit.latents.LatentStore
    gallery: GalleryIndex | None = None
    directions_note: str | None = None
    _project_G: Any = None

    # ---- loading ------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, source: ModelSource, config: EngineConfig = EngineConfig()) -> "Engine":
        """Load the generator, its directions (the file beside it, else SeFa computed now) and the gallery index."""
        from ..edit.directions import DirectionSet, DirectionsError, compute_directions, directions_path
        from ..edit.latents import LatentStore, latents_dir
        from ..edit.render import Renderer
        from ..generate import load_generator, resolve_device
        from ..modelfile import model_paths, read_meta

        weights, _ = model_paths(source.path)
        meta = read_meta(source.path)
        from ..precision import resolve_precision

        device = resolve_device(config.device)
        precision = resolve_precision(config.precision, device)
        G = load_generator(source.path, device)
        model_id = _model_id(weights)
        note = None
        try:
            directions = DirectionSet.load(directions_path(weights))
        except DirectionsError as e:
            # No (readable) directions file: SeFa needs no training data, so the editor still has sliders.
            directions = DirectionSet(model=model_id)
            directions.merge(compute_directions(G, "sefa", num=3, ranges=MIX_LEVELS,
                                                samples=config.direction_samples))
            note = f"{e}; using SeFa directions computed at start-up"
            log.info(note)
        latents = LatentStore(config.latents_dir or latents_dir(weights))
        renderer = Renderer(G, directions, model_id=model_id, latents=latents, precision=precision)
        sha = str(meta.get("weights", {}).get("sha256") or hashlib.sha256(weights.read_bytes()).hexdigest())
        gallery = load_index(config.gallery_dir or default_gallery_dir(weights), sha, config.psi)
        return cls(source=source, config=config, G=G, model_id=model_id, weights_sha256=sha, directions=directions,
                   renderer=renderer, latents=latents, gallery=gallery, directions_note=note,
                   # Projection reads G from its own thread while the renderer swaps noise buffers of its G
                   # under its lock: a private copy (made before any render) keeps them apart.
                   _project_G=copy.deepcopy(G))

    # ---- facts for pages ----------------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return int(self.G.img_width)

    @property
    def height(self) -> int:
        return int(self.G.img_height)

    def visible_directions(self) -> list[dict[str, Any]]:
        """The sliders of the editor: named, non-hidden directions in order."""
        return [{"id": d.id, "name": d.name, "layers": d.layers, "max": MAX_AMOUNT, "method": d.method}
                for d in self.directions.visible()]

    def limits(self) -> dict[str, Any]:
        return {"psi_min": PSI_RANGE[0], "psi_max": PSI_RANGE[1], "max_amount": MAX_AMOUNT, "max_edits": MAX_EDITS,
                "max_mixes": MAX_MIXES, "mix_levels": list(MIX_LEVELS), "seed_max": 2**32 - 1}

    # ---- states -------------------------------------------------------------------------------------------------
    def seed_state(self, seed: int) -> EditState:
        """The plain image of a seed (home page, gallery, permalinks)."""
        return EditState(model=self.model_id, seed=seed, psi=self.config.psi)

    def check(self, state: EditState) -> EditState:
        """Validate a state against this model (its id, directions, layer ranges and latents)."""
        if state.model != self.model_id:
            raise EditStateError(f"this design was made with model {state.model!r}; this server serves "
                                 f"{self.model_id!r}")
        return self.renderer.validate(state)

    def decode(self, token: str) -> EditState:
        """A share token -> a checked state; any malformed token is an EditStateError."""
        return self.check(EditState.decode(token))

    def state_from_params(self, seed: int | None, latent: str | None, psi: float | None, edits: list[str],
                          mixes: list[str]) -> EditState:
        """The editor's query form: `edit=ID:AMOUNT` and `mix=SEED:LAYERS`, repeated."""
        if len(edits) > MAX_EDITS:
            raise BadInput(f"too many edits ({len(edits)}); at most {MAX_EDITS}")
        if len(mixes) > MAX_MIXES:
            raise BadInput(f"too many style mixes ({len(mixes)}); at most {MAX_MIXES}")
        parsed_edits = []
        for e in edits:
            did, sep, amount = e.rpartition(":")
            try:
                value = float(amount)
            except ValueError:
                value = None
            if not sep or value is None:
                raise BadInput(f"edit {e[:80]!r}: expected DIRECTION:AMOUNT, e.g. {self._example_direction()}:1.5")
            parsed_edits.append((did, value))
        parsed_mixes = []
        for m in mixes:
            s, sep, layers = m.partition(":")
            if not sep or not s.isdigit() or len(s) > 10:
                raise BadInput(f"mix {m[:80]!r}: expected SEED:LAYERS, e.g. 7:coarse")
            parsed_mixes.append((int(s), layers))
        if seed is None and latent is None:
            raise BadInput("give a state token, or a seed (or latent) with optional psi, edit and mix parameters")
        state = EditState(model=self.model_id, seed=seed, latent=latent,
                          psi=(1.0 if latent is not None else self.config.psi) if psi is None else psi,
                          edits=tuple(parsed_edits), mixes=tuple(parsed_mixes))
        return self.check(state)

    def _example_direction(self) -> str:
        vis = self.directions.visible()
        return vis[0].id if vis else "sefa_fine_0"

    @staticmethod
    def base_of(state: EditState) -> EditState:
        """The same sneaker without edits or mixes: the editor's 'before'."""
        return state.replace(edits=(), mixes=())

    def etag(self, token: str, fmt: str) -> str:
        """Weak validator of an image: the weights, the state and the format decide the picture.

        Weak because float round-off may differ with the batch a render shared (at most one level in a few pixels),
        so two servers can send slightly different bytes for the same, equivalent image.
        """
        h = hashlib.sha256(f"{self.weights_sha256}\0{token}\0{fmt}".encode()).hexdigest()[:32]
        return f'W/"{h}"'

    # ---- rendering (worker threads) -----------------------------------------------------------------------------
    def render_arrays(self, states: list[EditState]) -> list[np.ndarray]:
        """uint8 HxWx3 per state. Plain seeds (home page, gallery) take the generator's bulk path; designs with
        edits, mixes or a latent take the renderer, whose per-layer caches make slider moves cheap."""
        out: list[np.ndarray | None] = [None] * len(states)
        plain = [i for i, s in enumerate(states) if _is_plain(s)]
        by_psi: dict[float, list[int]] = {}
        for i in plain:
            by_psi.setdefault(states[i].psi, []).append(i)
        for psi, idx in by_psi.items():
            for i, arr in zip(idx, self._generate([states[i].seed for i in idx], psi)):
                out[i] = arr
        rest = [i for i in range(len(states)) if out[i] is None]
        if rest:
            for i, arr in zip(rest, self.renderer.render_batch([states[i] for i in rest])):
                out[i] = arr
        return out  # type: ignore[return-value]

    def _generate(self, seeds: list[int], psi: float) -> list[np.ndarray]:
        from ..generate import generate_images

        return [arr for _, arr in generate_images(self.G, seeds, psi=psi, noise_mode="const",
                                                  batch_size=max(1, len(seeds)), precision=self.renderer.precision)]

    def render_keys(self, keys: list[tuple[EditState, str]]) -> list[bytes | Exception]:
        """The render pool's batch function: each distinct state rendered once, then encoded per format.

        A state that turned bad after validation (its latent file deleted meanwhile) must not fail the requests
        it happened to share a batch with: the batch is retried one state at a time and only that one fails.
        """
        states = list(dict.fromkeys(s for s, _ in keys))
        try:
            arrays: dict[EditState, np.ndarray | Exception] = dict(zip(states, self.render_arrays(states)))
        except EditStateError:
            arrays = {}
            for s in states:
                try:
                    arrays[s] = self.render_arrays([s])[0]
                except EditStateError as e:
                    arrays[s] = e
        return [a if isinstance(a, Exception) else encode_image(a, fmt) for a, fmt in ((arrays[s], f) for s, f in keys)]

    def render_seeds(self, seeds: list[int]) -> list[np.ndarray]:
        """Plain seed images exactly as the site serves them (the gallery builder's render function)."""
        return self.render_arrays([self.seed_state(s) for s in seeds])

    def gallery_file(self, state: EditState, fmt: str) -> Path | None:
        """The pre-rendered file of a plain seed state, when the gallery has it."""
        if (self.gallery is None or fmt != self.gallery.ext or state.seed is None or state.edits or state.mixes
                or state.latent is not None or state.psi != self.config.psi or state.noise != "const"):
            return None
        return self.gallery.path(state.seed)

    # ---- uploads and projection (job thread) -------------------------------------------------------------------
    def read_upload(self, data: bytes) -> Any:
        """Bytes -> an RGB PIL image, or BadInput for anything that is not a sane image."""
        import io

        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                w, h = img.size
                if w * h > self.config.max_image_pixels:
                    raise BadInput(f"image is {w}x{h} pixels; at most {self.config.max_image_pixels:,} pixels")
                img.load()
        except BadInput:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise BadInput(f"the image has too many pixels; at most {self.config.max_image_pixels:,}") from None
        except UnidentifiedImageError:
            raise BadInput("the upload is not an image we can read (PNG, JPEG or WebP)") from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise BadInput("the image file is damaged or truncated") from None
        return img.convert("RGB")

    def project(self, image: Any, progress: Callable[[int, int], None]) -> dict[str, Any]:
        """Find the latent that draws `image`, store it, and return the edit state that shows it."""
        from ..edit.project import project

        result = project(self._project_G, image, steps=self.config.project_steps,
                         callback=lambda step, total, _losses: progress(step, total))
        latent_id = self.latents.save(result.ws, result.noise,
                                      info={"model": self.model_id, **result.info})
        state = EditState(model=self.model_id, latent=latent_id, psi=1.0)
        return {"state": state.encode(), "latent": latent_id, "error": result.info.get("final_error")}


def _is_plain(state: EditState) -> bool:
    """A seed at some truncation, nothing else: what `generate` draws for that seed."""
    return state.seed is not None and not state.edits and not state.mixes and state.noise == "const"


def _model_id(weights: Path) -> str:
    """A readable id for states: the model file's name, made safe for tokens."""
    import re

    stem = weights.name[: -len(".safetensors")] if weights.name.endswith(".safetensors") else weights.stem
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).lstrip("-_.") or "model"
    return safe[:64]
