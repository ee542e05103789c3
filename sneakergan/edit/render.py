"""Render edit states to images, re-using everything an edit did not change.

A state becomes ws in three steps: base ws (mapping of the seed's z, or a stored projected latent; truncated by
psi), style mixes (ws layer ranges replaced by another seed's), then direction edits (w += amount * sigma * v on
the direction's layers). Every ws index gets a key naming exactly what determines it, and the renderer caches by
those keys in bounded LRUs:

- mapping output per seed (truncation is a cheap lerp on top);
- per-layer styles (affine(w)) per (layer, key);
- synthesis block outputs per prefix of keys: block k's activations depend only on the ws its layers and the
  earlier blocks read, so moving a "fine" slider re-runs only the last blocks, and two states that share a
  seed share their coarse blocks even inside one batch;
- finished images per state.

Crossbred designs (`state.cross`) plan both parents (recursively) and blend their ws per level, with keys that
name both parents, so a child shares the caches of its parents' layers; a row of children from the same parents
shares all of their mapping work.

This is the one render path: callers (the website, the CLI) never choose how a state is drawn. A batch with many
plain seeds (a gallery page) draws those in one bulk synthesis without the block cache (their blocks would only
evict the editor's); a few plain seeds (a home page, the editor opening a seed) take the cached path, so the
first slider move re-uses their blocks.

`render_batch` runs the blocks that are missing for several states as one batch per block. Noise mode
'random' draws the noise from a torch generator seeded by the state's seed (as `generate` does), so it is
deterministic too; those states and latents with their own projected noise skip the block cache.

A Renderer is not meant to be shared between threads without its lock: `render`/`render_batch` take it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping

import numpy as np
import torch

from ..generate import images_to_uint8, seeds_to_z
from ..precision import autocast
from .directions import Direction, DirectionSet, directions_path
from .identity import model_id
from .latents import LatentError, LatentStore, latents_dir
from .layers import layer_indices
from .state import BLEND_LEVELS, EditState, EditStateError


def model_id_for(path: str | Path) -> str:
    """The model id a model file answers to (kept for callers; the rule lives in `edit.identity.model_id`)."""
    return model_id(path)


def is_plain(state: EditState) -> bool:
    """A seed at some truncation and nothing else: what `generate` draws for that seed."""
    return (state.seed is not None and state.cross is None and not state.edits and not state.mixes
            and state.noise != "random")


def leaves(state: EditState) -> Iterator[EditState]:
    """The seed / latent states a design is made from (itself, or its crossbred ancestors)."""
    if state.cross is None:
        yield state
    else:
        yield from leaves(state.cross.a)
        yield from leaves(state.cross.b)


def noise_source(state: EditState) -> EditState:
    """Whose noise a design uses: its own, or (crossbred) its first parent's, recursively."""
    while state.cross is not None:
        state = state.cross.a
    return state


class LRU:
    """Least-recently-used dict bounded by entry count and, optionally, by a size function's total."""

    def __init__(self, max_items: int, max_size: float = float("inf"),
                 sizeof: Callable[[Any], float] = lambda v: 0) -> None:
        self.max_items, self.max_size, self.sizeof = max_items, max_size, sizeof
        self.size = 0.0
        self.hits = self.misses = 0
        self._d: OrderedDict[Hashable, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Hashable) -> Any:
        val = self._d.get(key)
        if val is None:
            self.misses += 1
            return None
        self._d.move_to_end(key)
        self.hits += 1
        return val

    def put(self, key: Hashable, val: Any) -> None:
        if self.max_items <= 0:
            return
        s = self.sizeof(val)
        if s > self.max_size:
            return
        old = self._d.pop(key, None)
        if old is not None:
            self.size -= self.sizeof(old)
        self._d[key] = val
        self.size += s
        while len(self._d) > self.max_items or self.size > self.max_size:
            _, ev = self._d.popitem(last=False)
            self.size -= self.sizeof(ev)

    def clear(self) -> None:
        self._d.clear()
        self.size = 0.0


def _tensor_bytes(v: Any) -> float:
    if isinstance(v, torch.Tensor):
        return v.numel() * v.element_size()
    if isinstance(v, np.ndarray):
        return v.nbytes
    if isinstance(v, (tuple, list)):
        return sum(_tensor_bytes(x) for x in v)
    return 0


class Renderer:
    """EditState -> uint8 HxWx3, with caching and batching. `cache_size=0` turns every cache off."""

    def __init__(self, G: torch.nn.Module, directions: DirectionSet | Iterable[Direction] | Mapping[str, Direction]
                 | None = None, model_id: str = "model", cache_size: int = 256,
                 latents: LatentStore | str | Path | None = None, cache_bytes: int = 256 << 20,
                 threads: int | None = None, precision: str = "fp32") -> None:
        if G.c_dim:
            raise ValueError("the editor supports unconditional models only (this model has class labels)")
        if threads:
            torch.set_num_threads(threads)  # process-wide: say so in the caller's docs
        self.G = G.eval()
        self.model_id = model_id
        self.device = next(G.parameters()).device
        self.precision = precision  # resolved (sneakergan.precision): synthesis runs under its autocast
        self.invert = bool(getattr(G.cfg, "invert", False))
        self.num_ws = G.num_ws
        if isinstance(directions, Mapping):
            directions = directions.values()
        ordered = sorted(directions or [], key=lambda d: (d.order, d.id))
        self.directions: dict[str, Direction] = {d.id: d for d in ordered}  # editor order
        self._dir_vec = {did: torch.as_tensor(np.asarray(d.vector), dtype=torch.float32, device=self.device)
                         * float(d.sigma) for did, d in self.directions.items()}
        self._dir_idx = {did: tuple(layer_indices(d.layers, self.num_ws)) for did, d in self.directions.items()}
        self.latents = LatentStore(latents) if isinstance(latents, (str, Path)) else latents
        self._lock = threading.RLock()
        # Block layout: for each synthesis block, its ws slice start, width and its style layers' ws indices.
        self._blocks = G.synthesis.blocks()
        self._block_ws: list[tuple[int, int]] = []
        idx = 0
        for b in self._blocks:
            self._block_ws.append((idx, b.num_conv + 1))
            idx += b.num_conv
        by_block: dict[str, list] = {}
        for sl in G.synthesis.style_layers():
            by_block.setdefault(sl.name.split(".")[0], []).append(sl)
        self._style_layers = [by_block[f"b{res}"] for res in G.synthesis.block_resolutions]
        self.bulk_min = 4  # plain seeds per batch from which they skip the block cache (see the module docstring)
        n = cache_size
        self.w_cache = LRU(n * 4)
        self.latent_cache = LRU(n)
        self.style_cache = LRU(n * 8 * len(self._blocks), cache_bytes / 4 if n else 0, _tensor_bytes)
        self.block_cache = LRU(n * len(self._blocks), cache_bytes if n else 0, _tensor_bytes)
        self.image_cache = LRU(n, cache_bytes / 4 if n else 0, _tensor_bytes)

    @classmethod
    def from_model(cls, path: str | Path, model_id: str | None = None, device: str = "cpu",
                   G: torch.nn.Module | None = None, **kw: Any) -> "Renderer":
        """Load G_ema (unless given), NAME.directions.json (if any) and NAME.latents/ for a model file."""
        from ..generate import load_generator

        G = G if G is not None else load_generator(path, device)
        dp = directions_path(path)
        dirs = DirectionSet.load(dp) if dp.exists() else None
        return cls(G, dirs, model_id=model_id or model_id_for(path), latents=latents_dir(path), **kw)

    # ---- public API -------------------------------------------------------------------------------------------
    def validate(self, state: EditState) -> EditState:
        """Check a state against this model (id, direction ids, layer ranges, latent exists)."""
        if state.model != self.model_id:
            raise EditStateError(f"state is for model {state.model!r}, this renderer serves {self.model_id!r}")
        state.validate(directions=self.directions.keys(), num_ws=self.num_ws)
        for leaf in leaves(state):
            if leaf.latent is None:
                continue
            if self.latents is None:
                raise EditStateError("this renderer has no projected latents")
            try:
                self.latents.path(leaf.latent)
            except LatentError as e:
                raise EditStateError(str(e)) from None
            if not self.latents.path(leaf.latent).exists():
                raise EditStateError(f"unknown latent {leaf.latent!r}")
        return state

    def render(self, state: EditState) -> np.ndarray:
        """uint8 [H, W, 3]."""
        return self.render_batch([state])[0]

    @torch.inference_mode()
    def render_batch(self, states: list[EditState]) -> list[np.ndarray]:
        """uint8 [H, W, 3] per state; shared work (seeds, early blocks) is done once for the whole batch."""
        with self._lock:
            for s in states:
                self.validate(s)
            out: list[np.ndarray | None] = [self.image_cache.get(s) for s in states]
            todo = [i for i, a in enumerate(out) if a is None]
            if not todo:
                return out  # type: ignore[return-value]
            plans = [self._plan(states[i]) for i in todo]
            plain = [p for p in plans if p["plain"]]
            if len(plain) < self.bulk_min:
                for p in plain:
                    p["plain"] = False
                plain = []
            cached_path = [p for p in plans if p["cacheable"] and not p["plain"]]
            imgs: dict[int, torch.Tensor] = {}
            with autocast(self.precision, self.device):
                if plain:
                    for p, img in zip(plain, self._synthesize_plain(plain)):
                        imgs[id(p)] = img
                if cached_path:
                    for p, img in zip(cached_path, self._synthesize_cached(cached_path)):
                        imgs[id(p)] = img
                for p in plans:
                    if not p["cacheable"] and not p["plain"]:
                        imgs[id(p)] = self._synthesize_alone(p)
            for i, p in zip(todo, plans):
                arr = images_to_uint8(imgs[id(p)], self.invert)[0]
                arr.setflags(write=False)  # cached: callers must not change it in place
                self.image_cache.put(states[i], arr)
                out[i] = arr
            return out  # type: ignore[return-value]

    @torch.inference_mode()
    def ws(self, state: EditState) -> torch.Tensor:
        """The final ws of a state [num_ws, w_dim] (after truncation, mixes and edits)."""
        with self._lock:
            self.validate(state)
            return self._plan(state)["ws"].clone()

    @torch.inference_mode()
    def base_ws(self, state: EditState) -> torch.Tensor:
        """The state's ws before mixes and edits [num_ws, w_dim]."""
        with self._lock:
            self.validate(state)
            if state.cross is not None:
                return self._plan(state.replace(edits=(), mixes=()))["ws"].clone()
            return self._source_ws(("latent", state.latent) if state.latent else ("seed", state.seed), state.psi)

    @torch.inference_mode()
    def render_ws(self, ws: torch.Tensor, noise: str = "const", batch: int = 8) -> np.ndarray:
        """Uncached synthesis of raw ws [N, num_ws, w_dim] -> uint8 [N, H, W, 3] (interpolation, walks)."""
        with self._lock:
            out = []
            for i in range(0, ws.shape[0], batch):
                chunk = ws[i: i + batch].to(self.device, torch.float32)
                with self._noise_rng(0 if noise == "random" else None), autocast(self.precision, self.device):
                    img = self.G.synthesis(chunk, noise_mode=noise)
                out.append(images_to_uint8(img, self.invert))
            return np.concatenate(out)

    def visible_directions(self) -> list[Direction]:
        """The directions the editor shows (not hidden), in their order."""
        return [d for d in self.directions.values() if not d.hidden]

    def cache_stats(self) -> dict[str, dict[str, int]]:
        """Hits, misses and entries per cache (for the benchmark and the server's status page)."""
        return {name: {"hits": c.hits, "misses": c.misses, "entries": len(c)}
                for name, c in (("w", self.w_cache), ("styles", self.style_cache), ("blocks", self.block_cache),
                                ("images", self.image_cache))}

    def clear_caches(self) -> None:
        for c in (self.w_cache, self.latent_cache, self.style_cache, self.block_cache, self.image_cache):
            c.clear()

    # ---- ws and keys ------------------------------------------------------------------------------------------
    def _seed_w(self, seed: int) -> torch.Tensor:
        w = self.w_cache.get(seed)
        if w is None:
            z = seeds_to_z([seed], self.G.z_dim).to(self.device)
            w = self.G.mapping(z, None)[0, 0]
            self.w_cache.put(seed, w)
        return w

    def _prefetch_seeds(self, seeds: Iterable[int]) -> None:
        """Map every uncached seed in one batch."""
        missing = sorted({s for s in seeds if self.w_cache.get(s) is None})
        if missing:
            z = seeds_to_z(missing, self.G.z_dim).to(self.device)
            for s, w in zip(missing, self.G.mapping(z, None)[:, 0]):
                self.w_cache.put(s, w)

    def _latent(self, latent_id: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hit = self.latent_cache.get(latent_id)
        if hit is None:
            try:
                ws, noise = self.latents.load(latent_id)
            except LatentError as e:
                raise EditStateError(str(e)) from None
            if tuple(ws.shape) != (self.num_ws, self.G.w_dim):
                raise EditStateError(f"latent {latent_id!r} has shape {tuple(ws.shape)}, this model needs "
                                     f"{(self.num_ws, self.G.w_dim)}: it was projected with another model")
            hit = (ws.to(self.device), {k: v.to(self.device) for k, v in noise.items()})
            self.latent_cache.put(latent_id, hit)
        return hit

    def _source_ws(self, source: tuple[str, Any], psi: float) -> torch.Tensor:
        if source[0] == "seed":
            w = self._seed_w(source[1]).unsqueeze(0).expand(self.num_ws, -1)
        else:
            w = self._latent(source[1])[0]
        return self.G.mapping.w_avg.lerp(w, psi) if psi != 1 else w.clone()

    def _seeds_of(self, state: EditState) -> list[int]:
        out = [m[0] for m in state.mixes]
        if state.cross is not None:
            return out + self._seeds_of(state.cross.a) + self._seeds_of(state.cross.b)
        return out + [state.seed] * (state.seed is not None)

    def _plan(self, state: EditState, prefetched: bool = False) -> dict[str, Any]:
        """Final ws plus a key per ws index naming exactly what determines that w."""
        if not prefetched:
            self._prefetch_seeds(self._seeds_of(state))
        if state.cross is None:
            base = ("latent", state.latent) if state.latent is not None else ("seed", state.seed)
            ws = self._source_ws(base, state.psi)
            sources: list[Any] = [(base, state.psi)] * self.num_ws
        else:
            # A child: each level of ws moves from parent a's towards parent b's by that level's blend.
            pa, pb = self._plan(state.cross.a, True), self._plan(state.cross.b, True)
            ws = pa["ws"].clone()
            sources = [None] * self.num_ws
            for level, t in zip(BLEND_LEVELS, state.cross.blend):
                for i in layer_indices(level, self.num_ws):
                    ws[i] = pa["ws"][i].lerp(pb["ws"][i], t) if t else pa["ws"][i]
                    sources[i] = ("cross", pa["keys"][i], pb["keys"][i], t)
        for seed, layers in state.mixes:
            idx = layer_indices(layers, self.num_ws)
            other = self._source_ws(("seed", seed), state.psi)
            ws[idx] = other[idx]
            for i in idx:
                sources[i] = (("seed", seed), state.psi)
        per_layer_edits: list[list[tuple[str, float]]] = [[] for _ in range(self.num_ws)]
        for did, amount in state.edits:
            if amount == 0:
                continue  # a zero edit is the identity: keep its keys (and cache hits) identical
            idx = list(self._dir_idx[did])
            ws[idx] += amount * self._dir_vec[did]
            for i in idx:
                per_layer_edits[i].append((did, amount))
        keys = tuple((sources[i], tuple(per_layer_edits[i])) for i in range(self.num_ws))
        root = noise_source(state)
        latent_noise = root.latent is not None and state.noise == "const" and bool(self._latent(root.latent)[1])
        return {"state": state, "ws": ws, "keys": keys, "noise": state.noise, "plain": is_plain(state),
                "cacheable": state.noise != "random" and not latent_noise}

    # ---- synthesis --------------------------------------------------------------------------------------------
    def _styles(self, block: int, keys: tuple, ws: torch.Tensor) -> list[torch.Tensor]:
        """Style vectors [C] of one block's layers for one sample, from the per-(layer, key) cache."""
        out = []
        for sl in self._style_layers[block]:
            k = (sl.name, keys[sl.ws_index])
            s = self.style_cache.get(k)
            if s is None:
                s = sl.affine(ws[sl.ws_index].unsqueeze(0))[0]
                self.style_cache.put(k, s)
            out.append(s)
        return out

    def _synthesize_cached(self, plans: list[dict[str, Any]]) -> list[torch.Tensor]:
        n = len(plans)
        cur: list[tuple[torch.Tensor | None, torch.Tensor | None]] = [(None, None)] * n
        for b, block in enumerate(self._blocks):
            start, width = self._block_ws[b]
            prefix = [(p["noise"], p["keys"][: start + width]) for p in plans]
            groups: dict[Hashable, list[int]] = {}
            for i, key in enumerate(prefix):
                hit = self.block_cache.get(key)
                if hit is not None:
                    cur[i] = hit
                else:
                    groups.setdefault(key, []).append(i)
            if not groups:
                continue
            # One representative per distinct prefix; states sharing a prefix share the result.
            reps = [idxs[0] for idxs in groups.values()]
            by_noise: dict[str, list[int]] = {}
            for r in reps:
                by_noise.setdefault(plans[r]["noise"], []).append(r)
            for noise, rs in by_noise.items():
                x = None if b == 0 else torch.cat([cur[r][0] for r in rs])
                img = None if b == 0 else torch.cat([cur[r][1] for r in rs])
                ws = torch.stack([plans[r]["ws"][start: start + width] for r in rs])
                per = [self._styles(b, plans[r]["keys"], plans[r]["ws"]) for r in rs]
                styles = [torch.stack([p[j] for p in per]) for j in range(len(per[0]))]
                x, img = block(x, img, ws, noise, False, styles)
                last = b == len(self._blocks) - 1  # the finished image is cached as uint8 instead
                for j, r in enumerate(rs):
                    res = (x[j: j + 1], img[j: j + 1])
                    if not last:
                        self.block_cache.put(prefix[r], res)
                    for i in groups[prefix[r]]:
                        cur[i] = res
        return [c[1] for c in cur]

    def _synthesize_plain(self, plans: list[dict[str, Any]]) -> list[torch.Tensor]:
        """Plain seeds in one synthesis call per noise mode, as `generate` draws them (no block cache)."""
        out: dict[int, torch.Tensor] = {}
        by_noise: dict[str, list[int]] = {}
        for i, p in enumerate(plans):
            by_noise.setdefault(p["noise"], []).append(i)
        for noise, idx in by_noise.items():
            img = self.G.synthesis(torch.stack([plans[i]["ws"] for i in idx]), noise_mode=noise)
            for j, i in enumerate(idx):
                out[i] = img[j: j + 1]
        return [out[i] for i in range(len(plans))]

    def _synthesize_alone(self, plan: dict[str, Any]) -> torch.Tensor:
        state = noise_source(plan["state"])
        ws = plan["ws"].unsqueeze(0)
        styles = [[s.unsqueeze(0) for s in self._styles(b, plan["keys"], plan["ws"])]
                  for b in range(len(self._blocks))]
        seed = state.seed if state.seed is not None else int(hashlib.sha256(state.latent.encode()).hexdigest()[:8], 16)
        noise = plan["noise"]  # the design's own mode; only the noise maps / rng seed come from its root
        noise_maps = self._latent(state.latent)[1] if state.latent is not None and noise == "const" else {}
        with self._noise_rng(seed if noise == "random" else None), self._swap_noise(noise_maps):
            return self.G.synthesis(ws, noise_mode=noise, styles=styles)

    @contextmanager
    def _noise_rng(self, seed: int | None) -> Iterator[None]:
        if seed is None:
            yield
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    @contextmanager
    def _swap_noise(self, maps: dict[str, torch.Tensor]) -> Iterator[None]:
        """Temporarily use a projected latent's own noise maps as the layers' constant noise (under the lock)."""
        saved = {}
        try:
            for name, t in maps.items():
                buf = self.G.synthesis.get_buffer(f"{name}.noise_const")
                saved[name] = buf.clone()
                buf.copy_(t)
            yield
        finally:
            for name, t in saved.items():
                self.G.synthesis.get_buffer(f"{name}.noise_const").copy_(t)
