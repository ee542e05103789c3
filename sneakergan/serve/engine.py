"""What the routes need from the model: loading, edit states from URLs, rendering to image bytes, projection.

The engine owns no HTTP: the app turns its errors (`EditStateError`, `BadInput`) into 4xx answers. Rendering
goes through the edit layer's one render path (`Renderer.render_batch`), which decides how each state is drawn.
Rendering functions here run in worker threads (the render pool, the projection job runner), never on the event
loop.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..edit.identity import model_id as model_id_of
from ..edit.state import MAX_AMOUNT, MAX_EDITS, MAX_MIXES, PSI_RANGE, EditState, EditStateError
from .gallery import GalleryIndex, default_gallery_dir, load_index
from .images import encode_image, upscale
from .model_source import ModelSource

log = logging.getLogger("sneakergan.serve")

MIX_LEVELS = ("coarse", "middle", "fine")


class BadInput(ValueError):
    """A request parameter is malformed; the message is shown to the client as is."""


# What the render pool is asked for: a state, an image format and the long side in pixels (None: native size).
RenderKey = tuple[EditState, str, "int | None"]


@dataclass(frozen=True)
class EngineConfig:
    """Model-side settings of the site."""

    psi: float = 0.7                   # truncation of plain seed images (home page, gallery)
    device: str = "cpu"
    precision: str = "fp32"             # auto | fp32 | bf16 | fp16 (sneakergan.precision) of every render
    gallery_dir: Path | None = None     # default: NAME.gallery beside the model
    latents_dir: Path | None = None     # default: NAME.latents beside the model
    project_steps: int = 150            # optimisation steps of a photo projection
    project_w_samples: int = 2000       # w samples for the projector's start point (10k took seconds before step 1)
    direction_samples: int = 2000       # w samples for sigma when directions are computed on the fly
    effect_seeds: tuple[int, ...] = (0, 1, 2)  # seeds on which each direction's visible effect is measured
    min_effect: float = 0.5             # mean |pixel change| between -2 and +2 sigma below which a slider is left out


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
    effects: dict[str, float] | None = None  # direction id -> measured visible effect (mean |pixel change|)
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
        model_id = model_id_of(weights)
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

    def measure_effects(self) -> dict[str, float]:
        """Measure each visible direction's effect (a second or two; the site runs it in the background right
        after start, so it answers before this is done). A slider that moves nothing looks broken."""
        from ..edit.effect import direction_effects

        self.effects = direction_effects(self.renderer, [d.id for d in self.directions.visible()],
                                         seeds=self.config.effect_seeds, psi=self.config.psi)
        return self.effects

    def warm_projection(self) -> None:
        """Pay the projector's one-off costs (photo normalisation imports, torch's first optimiser step, which
        imports its compiler machinery: seconds on a CPU) before a visitor uploads, so progress moves at once."""
        import torch

        from ..prepare import normalise  # noqa: F401 - imported for its side effect: loaded once, here

        x = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([x], lr=0.1)
        with torch.enable_grad():
            (x * 2).sum().backward()
        opt.step()

    # ---- facts for pages ----------------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return int(self.G.img_width)

    @property
    def height(self) -> int:
        return int(self.G.img_height)

    def visible_directions(self) -> list[dict[str, Any]]:
        """The sliders of the editor: named, non-hidden directions in order whose visible effect, once measured
        (`measure_effects`), reaches `config.min_effect` (the others still render in old links, they are just not
        offered). Before the measurement finishes every visible direction is offered."""
        eff = self.effects or {}
        return [{"id": d.id, "name": d.name, "layers": d.layers, "max": MAX_AMOUNT, "method": d.method,
                 "effect": round(eff.get(d.id, 0.0), 3)}
                for d in self.directions.visible() if self.effects is None or eff.get(d.id, 0.0) >= self.config.min_effect]

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
            raise WrongModel(f"this design was made with model {state.model!r}; this server serves "
                             f"{self.model_id!r}")
        return self.renderer.validate(state)

    def decode(self, token: str) -> EditState:
        """A share token -> a checked state; any malformed token is an EditStateError."""
        return self.check(EditState.decode(token))

    def parent(self, ref: str) -> EditState:
        """A crossbreeding parent from a seed number or a design's share token (or share link)."""
        ref = ref.strip()
        if "/s/" in ref:  # a pasted permalink
            ref = ref.rsplit("/s/", 1)[1].split("?", 1)[0].strip("/")
        if ref.isdigit() and len(ref) <= 10:
            seed = int(ref)
            if seed > 2**32 - 1:
                raise BadInput(f"seed {seed} is out of range [0, 2^32)")
            return self.seed_state(seed)
        if "state=" in ref:  # a pasted share link
            ref = ref.split("state=", 1)[1].split("&", 1)[0]
        return self.decode(ref)

    def state_from_params(self, seed: int | None, latent: str | None, psi: float | None, edits: list[str],
                          mixes: list[str], cross: str | None = None) -> EditState:
        """The editor's query form: `edit=ID:AMOUNT` and `mix=SEED:LAYERS`, repeated; `cross` is the token of a
        crossbred design (edits and mixes are then applied on top of it)."""
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
        if cross is not None:
            if seed is not None or latent is not None:
                raise BadInput("give either a crossbred design (cross) or a seed or latent, not both")
            child = self.decode(cross)
            if child.cross is None:
                raise BadInput("cross must be the token of a crossbred design")
            return self.check(child.replace(psi=child.psi if psi is None else psi, edits=tuple(parsed_edits),
                                            mixes=tuple(parsed_mixes)))
        if seed is None and latent is None:
            raise BadInput("give a state token, or a seed (or latent) with optional psi, edit and mix parameters")
        state = EditState(model=self.model_id, seed=seed, latent=latent,
                          psi=(1.0 if latent is not None else self.config.psi) if psi is None else psi,
                          edits=tuple(parsed_edits), mixes=tuple(parsed_mixes))
        return self.check(state)

    def children(self, a: EditState, b: EditState, blend: tuple[float, float, float], count: int, variety: float,
                 row: int) -> list[EditState]:
        """A row of crossbred children (checked against this model)."""
        from ..edit.breed import children

        return [self.check(c) for c in children(a, b, blend, count=count, variety=variety, row=row)]

    def _example_direction(self) -> str:
        vis = self.directions.visible()
        return vis[0].id if vis else "sefa_fine_0"

    @staticmethod
    def base_of(state: EditState) -> EditState:
        """The same sneaker without edits or mixes: the editor's 'before'."""
        return state.replace(edits=(), mixes=())

    def etag(self, token: str, fmt: str, size: int | None = None) -> str:
        """Weak validator of an image: the weights, the state and the format decide the picture.

        Weak because float round-off may differ with the batch a render shared (at most one level in a few pixels),
        so two servers can send slightly different bytes for the same, equivalent image.
        """
        h = hashlib.sha256(f"{self.weights_sha256}\0{token}\0{fmt}\0{size or ''}".encode()).hexdigest()[:32]
        return f'W/"{h}"'

    # ---- rendering (worker threads) -----------------------------------------------------------------------------
    def render_arrays(self, states: list[EditState]) -> list[np.ndarray]:
        """uint8 HxWx3 per state, through the edit layer's one render path."""
        return self.renderer.render_batch(states)

    def render_keys(self, keys: list[RenderKey]) -> list[bytes | Exception]:
        """The render pool's batch function: each distinct state rendered once, then encoded per format and size.

        A state that turned bad after validation (its latent file deleted meanwhile) must not fail the requests
        it happened to share a batch with: the batch is retried one state at a time and only that one fails.
        """
        states = list(dict.fromkeys(k[0] for k in keys))
        try:
            arrays: dict[EditState, np.ndarray | Exception] = dict(zip(states, self.render_arrays(states)))
        except EditStateError:
            arrays = {}
            for s in states:
                try:
                    arrays[s] = self.render_arrays([s])[0]
                except EditStateError as e:
                    arrays[s] = e
        out: list[bytes | Exception] = []
        for state, fmt, size in keys:
            a = arrays[state]
            out.append(a if isinstance(a, Exception) else encode_image(upscale(a, size) if size else a, fmt))
        return out

    def render_seeds(self, seeds: list[int]) -> list[np.ndarray]:
        """Plain seed images exactly as the site serves them (the gallery builder's render function)."""
        return self.render_arrays([self.seed_state(s) for s in seeds])

    def is_site_seed(self, state: EditState) -> bool:
        """Whether a state is a plain seed at the site's truncation (a gallery tile, a permalink, the home page)."""
        return state == self.seed_state(state.seed) if state.seed is not None else False

    def gallery_file(self, state: EditState, fmt: str) -> Path | None:
        """The pre-rendered file of a plain seed state, when the gallery has it."""
        if self.gallery is None or fmt != self.gallery.ext or not self.is_site_seed(state):
            return None
        return self.gallery.path(state.seed)

    # ---- projection (job thread) ------------------------------------------------------------------------------
    def project(self, image: Any, progress: Callable[..., None]) -> dict[str, Any]:
        """Find the latent that draws `image`, store it, and return the edit state that shows it.

        `progress(done, total, phase)` is called at once (so a page never shows "step 0 of 0") and after each step.
        """
        from ..edit.project import ProjectConfig, project

        steps = self.config.project_steps
        progress(0, steps, "preparing your photo")
        cfg = ProjectConfig(steps=steps, w_samples=self.config.project_w_samples)
        result = project(self._project_G, image, config=cfg,
                         callback=lambda step, total, _losses: progress(step, total, "finding your sneaker"))
        progress(steps, steps, "saving")
        latent_id = self.latents.save(result.ws, result.noise,
                                      info={"model": self.model_id, **result.info})
        state = EditState(model=self.model_id, latent=latent_id, psi=1.0)
        return {"state": state.encode(), "latent": latent_id, "error": result.info.get("final_error")}


class WrongModel(EditStateError):
    """A design made with another model than the one this site serves."""
