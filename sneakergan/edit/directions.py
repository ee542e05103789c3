"""Latent directions found without labels, and the per-checkpoint file that stores them.

- SeFa (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"): the affine layers map w to
  styles linearly, s = A w + b, so the unit directions n that change styles the most maximise |A n|^2; they are
  the eigenvectors of A^T A, where A stacks the effective affine weights of the chosen layers. Computed per
  layer range, so "fine" directions change what fine layers draw (colourways).
- GANSpace (Harkonen et al. 2020): principal components of w over many random samples; each comes with the
  standard deviation of w along it. Applied to a layer range chosen by a person.

Each file records the sha256 of the weights it was computed on (`weights_sha256`); when the model beside it
has other weights (re-exported with --force, or a checkpoint-latest that trained on), the file is stale and is
ignored with a warning rather than applying directions found on a different network.

Amounts are in sigma units: sigma is the std of w projected on the direction (over random samples), so +2 means
"two standard deviations of what the mapping network produces". Directions live in NAME.directions.json beside
the model, with the names, order, visibility and layer ranges people give them.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from ..fileio import atomic_write
from .layers import NAMED_RANGES, is_layer_spec, layer_indices
from ..errors import UserError

FORMAT = "sneakergan-directions/1"
METHODS = ("sefa", "ganspace")


class DirectionsError(UserError):
    """The directions file is missing, corrupt, or a direction id/range is unknown."""


class StaleDirectionsError(DirectionsError):
    """The directions file was computed on other weights than the model now beside it (retrained, re-exported)."""


@dataclass
class Direction:
    """A unit vector in W applied to a layer range; `amount * sigma * vector` is added to those ws."""

    id: str
    method: str
    name: str
    layers: str
    vector: np.ndarray  # [w_dim] float32, unit length
    sigma: float
    order: int = 0
    hidden: bool = False
    score: float = 0.0  # eigenvalue (SeFa) or explained variance (GANSpace)
    source_layers: str = "all"  # the range the direction was computed from (SeFa)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["vector"] = [float(x) for x in np.asarray(self.vector, dtype=np.float32)]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Direction":
        d = dict(d)
        d["vector"] = np.asarray(d["vector"], dtype=np.float32)
        return cls(**d)


@dataclass
class DirectionSet:
    """The ordered directions of one checkpoint (what NAME.directions.json holds)."""

    directions: list[Direction] = field(default_factory=list)
    model: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Direction]:
        return iter(sorted(self.directions, key=lambda d: (d.order, d.id)))

    def __len__(self) -> int:
        return len(self.directions)

    def __contains__(self, did: object) -> bool:
        return any(d.id == did for d in self.directions)

    def ids(self) -> list[str]:
        return [d.id for d in self]

    def get(self, did: str) -> Direction:
        for d in self.directions:
            if d.id == did:
                return d
        known = ", ".join(self.ids()[:12]) or "none: run `sneakergan directions compute`"
        raise DirectionsError(f"unknown direction {did!r} (known: {known})")

    def visible(self) -> list[Direction]:
        """What the editor shows: not hidden, in order."""
        return [d for d in self if not d.hidden]

    def merge(self, new: Iterable[Direction]) -> None:
        """Add or replace directions by id; a replaced one keeps the name, order, visibility and range people set."""
        by_id = {d.id: d for d in self.directions}
        next_order = max((d.order for d in self.directions), default=-1) + 1
        for d in new:
            old = by_id.get(d.id)
            if old is not None:
                d.name, d.order, d.hidden, d.layers = old.name, old.order, old.hidden, old.layers
            else:
                d.order = next_order
                next_order += 1
            by_id[d.id] = d
        self.directions = list(by_id.values())

    def reorder(self, ids: list[str]) -> None:
        """Put `ids` first, in that order; the rest keep their relative order after them."""
        for did in ids:
            self.get(did)
        rest = [d.id for d in self if d.id not in ids]
        for i, did in enumerate(list(ids) + rest):
            self.get(did).order = i

    # ---- file ---------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename)."""
        path = Path(path)
        body = {"format": FORMAT, "model": self.model,
                "updated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                **{k: v for k, v in self.meta.items() if k not in ("format", "model", "updated_at", "directions")},
                "directions": [d.to_json() for d in self]}
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(body, indent=1)))
        return path

    @property
    def weights_sha256(self) -> str | None:
        """sha256 of the weights these directions were computed on (None in files from before it was recorded)."""
        return self.meta.get("weights_sha256")

    @classmethod
    def load(cls, path: str | Path, check_weights: bool = True) -> "DirectionSet":
        """Read NAME.directions.json; with `check_weights`, raise StaleDirectionsError when the model NAME beside
        it has other weights than the directions were computed on."""
        path = Path(path)
        if not path.exists():
            raise DirectionsError(f"{path}: no directions yet (run `sneakergan directions compute`)")
        try:
            body = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DirectionsError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise DirectionsError(f"{path}: not a sneakergan directions file (expected format {FORMAT!r})")
        try:
            dirs = [Direction.from_json(d) for d in body.get("directions", [])]
        except (TypeError, KeyError, ValueError) as e:
            raise DirectionsError(f"{path}: bad direction entry ({e})") from None
        meta = {k: v for k, v in body.items() if k != "directions"}
        ds = cls(directions=dirs, model=body.get("model", ""), meta=meta)
        if check_weights:
            current = model_weights_sha256(model_of_directions(path))
            if ds.weights_sha256 and current and current != ds.weights_sha256:
                raise StaleDirectionsError(
                    f"{path}: computed on other weights (sha256 {ds.weights_sha256[:12]}, the model now has "
                    f"{current[:12]}); ignored: run `sneakergan directions compute` again")
        return ds

    @classmethod
    def load_or_empty(cls, path: str | Path) -> "DirectionSet":
        return cls.load(path) if Path(path).exists() else cls()

    @classmethod
    def for_model(cls, model_path: str | Path, warn: Callable[[str], None] | None = None) -> "DirectionSet":
        """The directions of a model: its file, or an empty set when there is none or the file is stale
        (`warn` then hears why). A corrupt file still raises DirectionsError."""
        path = directions_path(model_path)
        if not path.exists():
            return cls()
        try:
            return cls.load(path)
        except StaleDirectionsError as e:
            if warn is not None:
                warn(str(e))
            return cls()

    def tie_to(self, model_path: str | Path) -> None:
        """Record the weights of `model_path` as the ones these directions belong to."""
        sha = model_weights_sha256(model_path)
        if sha:
            self.meta["weights_sha256"] = sha


def directions_path(model_path: str | Path) -> Path:
    """NAME.directions.json beside NAME.safetensors / NAME.json."""
    p = Path(model_path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".directions.json")


def model_of_directions(path: str | Path) -> Path:
    """The model stem NAME that NAME.directions.json belongs to."""
    p = Path(path)
    suffix = ".directions.json"
    return p.with_name(p.name[: -len(suffix)]) if p.name.endswith(suffix) else p.with_suffix("")


def model_weights_sha256(model_path: str | Path) -> str | None:
    """The weights sha256 a model's JSON records, or None when there is no readable model there."""
    from ..modelfile import ModelFileError, read_meta

    try:
        return read_meta(model_path).get("weights", {}).get("sha256")
    except ModelFileError:
        return None


def check_layers(spec: str, num_ws: int) -> str:
    """Validate a layer range for a model; returns it."""
    if not is_layer_spec(spec):
        raise DirectionsError(f"unknown layer range {spec!r}: use {', '.join(NAMED_RANGES)} or a range like 0-3")
    try:
        layer_indices(spec, num_ws)
    except ValueError as e:
        raise DirectionsError(str(e)) from None
    return spec


# ---- discovery ----------------------------------------------------------------------------------------------------
@torch.inference_mode()
def sample_w(G: torch.nn.Module, n: int, seed: int = 0, batch: int = 1024) -> torch.Tensor:
    """n random w (psi 1) [n, w_dim] float64, from a fixed torch generator so results are reproducible."""
    gen = torch.Generator().manual_seed(seed)
    dev = next(G.parameters()).device
    out = []
    for i in range(0, n, batch):
        z = torch.randn(min(batch, n - i), G.z_dim, generator=gen).to(dev)
        c = None
        if G.c_dim:
            c = torch.nn.functional.one_hot(torch.randint(G.c_dim, (z.shape[0],), generator=gen), G.c_dim).float()
            c = c.to(dev)
        out.append(G.mapping(z, c)[:, 0].double().cpu())
    return torch.cat(out)


def _sign_fix(vecs: torch.Tensor) -> torch.Tensor:
    """Eigenvectors have no sign of their own: make each one's largest-magnitude entry positive (reproducible)."""
    idx = vecs.abs().argmax(dim=0)
    signs = torch.sign(vecs[idx, torch.arange(vecs.shape[1])])
    signs[signs == 0] = 1
    return vecs * signs


def sefa_weights(G: torch.nn.Module, layers: str) -> torch.Tensor:
    """A: the effective affine weights of every style layer reading a ws index in `layers`, stacked [sum C, w_dim]."""
    idx = set(layer_indices(layers, G.num_ws))
    mats = [(sl.affine.weight * sl.affine.weight_gain).detach().double().cpu()
            for sl in G.synthesis.style_layers() if sl.ws_index in idx]
    if not mats:
        raise DirectionsError(f"layer range {layers!r} covers no style layers of this model")
    return torch.cat(mats, dim=0)


def compute_sefa(G: torch.nn.Module, layers: str = "all", num: int = 10, w_samples: torch.Tensor | None = None,
                 ) -> list[Direction]:
    """The top `num` SeFa directions of a layer range, largest eigenvalue first, with sigma from `w_samples`."""
    A = sefa_weights(G, layers)
    evals, evecs = torch.linalg.eigh(A.T @ A)  # ascending
    evals, evecs = evals.flip(0), _sign_fix(evecs.flip(1))
    num = min(num, evecs.shape[1])
    w = w_samples if w_samples is not None else sample_w(G, 2000)
    sig = ((w - w.mean(0)) @ evecs[:, :num]).std(dim=0)
    return [Direction(id=f"sefa_{layers.replace('-', '_')}_{k}", method="sefa",
                      name=f"SeFa {layers} {k}", layers=layers, source_layers=layers,
                      vector=evecs[:, k].float().numpy(), sigma=float(sig[k]), score=float(evals[k]))
            for k in range(num)]


def compute_ganspace(G: torch.nn.Module, num: int = 10, w_samples: torch.Tensor | None = None,
                     layers: str = "all") -> list[Direction]:
    """The top `num` principal components of w, each with its std (sigma) and explained variance."""
    w = w_samples if w_samples is not None else sample_w(G, 10000)
    wc = w - w.mean(0)
    # Full SVD of the centred samples: exact and cheap at w_dim <= 512 and N ~ 1e4.
    _, s, vt = torch.linalg.svd(wc, full_matrices=False)
    comps = _sign_fix(vt.T)
    var = s.square() / (w.shape[0] - 1)
    total = var.sum()
    num = min(num, comps.shape[1])
    return [Direction(id=f"ganspace_{k}", method="ganspace", name=f"GANSpace {k}", layers=layers,
                      source_layers="all", vector=comps[:, k].float().numpy(), sigma=float(var[k].sqrt()),
                      score=float(var[k] / total))
            for k in range(num)]


def compute_directions(G: torch.nn.Module, method: str = "sefa", num: int = 10,
                       ranges: Iterable[str] = ("all", "coarse", "middle", "fine"), samples: int = 5000,
                       seed: int = 0) -> list[Direction]:
    """SeFa for each layer range in `ranges`, or GANSpace (applied to all layers until a person sets a range)."""
    if method not in METHODS:
        raise DirectionsError(f"unknown method {method!r}: use {' or '.join(METHODS)}")
    w = sample_w(G, samples, seed=seed)
    if method == "ganspace":
        return compute_ganspace(G, num, w)
    out: list[Direction] = []
    for r in ranges:
        check_layers(r, G.num_ws)
        if not layer_indices(r, G.num_ws):
            continue
        out += compute_sefa(G, r, num, w)
    return out
