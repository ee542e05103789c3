"""The edit state: one small immutable value that fully describes an edited image, and its URL-safe encoding.

The editor, share links and the API all speak it. An `EditState` that exists is structurally valid (checked on
construction); `validate(directions=..., num_ws=...)` adds the checks that need the model (known direction ids,
layer ranges inside the model). Encoding is `"1." + base64url(compact JSON)` without padding: version-tagged,
URL-safe without escaping, and exact (floats are written with Python's shortest round-trip repr).

Mix layers: 'coarse' | 'middle' | 'fine' | 'all', or "a-b", an inclusive range of ws indices.

Crossbreeding: a child has no seed or latent of its own but `cross = Cross(a, b, blend)`, two parent states and how
far each of its coarse / middle / fine ws move from parent a's towards parent b's (0 = a, 1 = b). Its own mixes and
edits apply on top of the blend, so a child opens in the editor like any design. Parents may be children
themselves, at most MAX_GENERATIONS deep (and the whole token stays under MAX_TOKEN_CHARS).
"""

from __future__ import annotations

import base64
import dataclasses
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import UserError
from .layers import NAMED_RANGES, is_layer_spec, layer_indices

TOKEN_VERSION = "1"
MAX_SEED = 2**32 - 1
PSI_RANGE = (-1.0, 2.0)
MAX_AMOUNT = 5.0  # in sigma units of the direction
MAX_EDITS = 16
MAX_MIXES = 4
MAX_TOKEN_CHARS = 4096  # the longest valid state (16 edits with 64-character ids) encodes to about 2,500
NOISE_MODES = ("const", "random", "none")
MAX_GENERATIONS = 4  # nesting of crossbred parents: bounded so a token can never recurse deeply
# [model, seed, psi, [[id, amount], ...], [[seed, layers], ...], noise] nests 3 deep; each crossbred generation
# adds two levels ([..., [parent_a, parent_b, blend]]).
MAX_TOKEN_DEPTH = 3 + 2 * MAX_GENERATIONS
BLEND_LEVELS = ("coarse", "middle", "fine")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class EditStateError(UserError):
    """An edit state (or its token) is invalid; the message says what and how to fix it."""


@dataclass(frozen=True)
class Cross:
    """The parents of a crossbred design and, per level (coarse, middle, fine), how much of parent b it takes."""

    a: "EditState"
    b: "EditState"
    blend: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        if not isinstance(self.a, EditState) or not isinstance(self.b, EditState):
            raise EditStateError("a crossbred design needs two parent designs")
        try:
            blend = tuple(_as_float(x, "blend") for x in self.blend)
        except TypeError:
            raise EditStateError("blend must be three numbers (coarse, middle, fine)") from None
        if len(blend) != 3 or not all(0.0 <= x <= 1.0 for x in blend):
            raise EditStateError("blend must be three numbers in [0, 1] (coarse, middle, fine)")
        object.__setattr__(self, "blend", blend)
        if max(self.a.generations, self.b.generations) >= MAX_GENERATIONS:
            raise EditStateError(f"too many generations of crossbreeding (at most {MAX_GENERATIONS})")


@dataclass(frozen=True)
class EditState:
    """model id + (seed | projected latent id) + truncation psi + direction edits + style mixes + noise mode.

    edits: ((direction_id, amount_in_sigma), ...) applied in w after mixing; mixes: ((seed, layers), ...) replace
    those ws layers with the other seed's (at the same psi), in order.
    """

    model: str
    seed: int | None = None
    latent: str | None = None
    psi: float = 1.0
    edits: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    mixes: tuple[tuple[int, str], ...] = field(default_factory=tuple)
    noise: str = "const"
    cross: Cross | None = None

    def __post_init__(self) -> None:
        # Normalise containers and numbers (lists from JSON, ints for floats) so equal states compare equal.
        try:
            edits = tuple((e[0], _as_float(e[1], "edit amount")) for e in _pairs(self.edits, "edits"))
            mixes = tuple((m[0], m[1]) for m in _pairs(self.mixes, "mixes"))
        except (TypeError, IndexError):
            raise EditStateError("edits must be (direction, amount) pairs and mixes (seed, layers) pairs") from None
        object.__setattr__(self, "edits", edits)
        object.__setattr__(self, "mixes", mixes)
        object.__setattr__(self, "psi", _as_float(self.psi, "psi"))
        self.validate()

    # ---- checks -----------------------------------------------------------------------------------------------
    def validate(self, directions: Iterable[str] | None = None, num_ws: int | None = None) -> "EditState":
        """Raise EditStateError on the first problem; with `directions` (known ids) and `num_ws` also check the
        state against a model. Returns self so calls chain."""
        if not isinstance(self.model, str) or not _ID_RE.fullmatch(self.model):
            raise EditStateError(f"model id {self.model!r} must be 1-64 letters, digits, '_', '-' or '.'")
        if self.cross is not None:
            if self.seed is not None or self.latent is not None:
                raise EditStateError("a crossbred design takes its sneaker from its parents: no seed or latent")
            if not isinstance(self.cross, Cross):
                raise EditStateError("cross must name two parents and a blend")
            for parent in (self.cross.a, self.cross.b):
                if parent.model != self.model:
                    raise EditStateError("both parents must come from the same model as the design")
                if directions is not None or num_ws is not None:
                    parent.validate(directions=directions, num_ws=num_ws)
        elif (self.seed is None) == (self.latent is None):
            raise EditStateError("give exactly one of seed or latent")
        if self.seed is not None:
            _check_seed(self.seed, "seed")
        if self.latent is not None and (not isinstance(self.latent, str) or not _ID_RE.fullmatch(self.latent)):
            raise EditStateError(f"latent id {self.latent!r} must be 1-64 letters, digits, '_', '-' or '.'")
        if not PSI_RANGE[0] <= self.psi <= PSI_RANGE[1]:
            raise EditStateError(f"psi {self.psi} is out of range [{PSI_RANGE[0]}, {PSI_RANGE[1]}]")
        if len(self.edits) > MAX_EDITS:
            raise EditStateError(f"too many edits ({len(self.edits)}); at most {MAX_EDITS}")
        known = set(directions) if directions is not None else None
        for did, amount in self.edits:
            if not isinstance(did, str) or not _ID_RE.fullmatch(did):
                raise EditStateError(f"direction id {did!r} must be 1-64 letters, digits, '_', '-' or '.'")
            if known is not None and did not in known:
                raise EditStateError(f"unknown direction {did!r} for model {self.model!r}")
            if not abs(amount) <= MAX_AMOUNT:
                raise EditStateError(f"edit {did!r}: amount {amount} is outside +-{MAX_AMOUNT:g} sigma")
        if len(self.mixes) > MAX_MIXES:
            raise EditStateError(f"too many style mixes ({len(self.mixes)}); at most {MAX_MIXES}")
        for seed, layers in self.mixes:
            _check_seed(seed, "mix seed")
            if not is_layer_spec(layers):
                raise EditStateError(f"mix layers {layers!r}: use {', '.join(NAMED_RANGES)} or an inclusive range "
                                     "of ws indices like 0-3")
            if num_ws is not None:
                try:
                    layer_indices(layers, num_ws)
                except ValueError as e:
                    raise EditStateError(f"mix layers: {e}") from None
        if self.noise not in NOISE_MODES:
            raise EditStateError(f"noise {self.noise!r} must be one of {', '.join(NOISE_MODES)}")
        return self

    @property
    def generations(self) -> int:
        """0 for a seed or latent, 1 + the deeper parent's for a crossbred design."""
        return 0 if self.cross is None else 1 + max(self.cross.a.generations, self.cross.b.generations)

    # ---- encoding ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (long keys; what the HTTP API returns). `cross` is only present for children."""
        d = {"model": self.model, "seed": self.seed, "latent": self.latent, "psi": self.psi,
             "edits": [list(e) for e in self.edits], "mixes": [list(m) for m in self.mixes], "noise": self.noise}
        if self.cross is not None:
            d["cross"] = {"a": self.cross.a.to_dict(), "b": self.cross.b.to_dict(), "blend": list(self.cross.blend)}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EditState":
        """Inverse of to_dict; unknown or missing keys are an EditStateError."""
        if not isinstance(d, dict):
            raise EditStateError("an edit state must be a JSON object")
        unknown = set(d) - {"model", "seed", "latent", "psi", "edits", "mixes", "noise", "cross"}
        if unknown:
            raise EditStateError(f"unknown edit state keys: {', '.join(sorted(unknown))}")
        if "model" not in d:
            raise EditStateError("edit state has no model")
        d = dict(d)
        cross = d.pop("cross", None)
        if cross is not None:
            if not isinstance(cross, dict) or set(cross) != {"a", "b", "blend"}:
                raise EditStateError("cross must be {a, b, blend}")
            blend = cross["blend"] if isinstance(cross["blend"], (list, tuple)) else ()
            d["cross"] = Cross(cls.from_dict(cross["a"]), cls.from_dict(cross["b"]), tuple(blend))
        return cls(**d)

    def encode(self) -> str:
        """Short URL-safe token; `EditState.decode(s.encode()) == s`."""
        raw = json.dumps(self._body(), separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
        return TOKEN_VERSION + "." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def _body(self) -> list[Any]:
        # Positional compact JSON, trailing defaults dropped: a plain seed link stays ~20 characters. A child's
        # source is null and its 7th element [parent a body, parent b body, blend].
        body: list[Any] = [self.model, self.seed if self.latent is None else self.latent, self.psi,
                           [list(e) for e in self.edits], [list(m) for m in self.mixes], self.noise,
                           None if self.cross is None else
                           [self.cross.a._body(), self.cross.b._body(), list(self.cross.blend)]]
        defaults = [None, None, 1.0, [], [], "const", None]
        while len(body) > 2 and body[-1] == defaults[len(body) - 1]:
            body.pop()
        return body

    @classmethod
    def decode(cls, token: str) -> "EditState":
        """Parse a token from `encode`; anything malformed raises EditStateError with one clear message."""
        if not isinstance(token, str) or not token:
            raise EditStateError("empty edit state token")
        if len(token) > MAX_TOKEN_CHARS:
            raise EditStateError(f"edit state token is too long ({len(token)} characters)")
        version, dot, payload = token.partition(".")
        if not dot:
            raise EditStateError("not an edit state token (expected VERSION.PAYLOAD)")
        if version != TOKEN_VERSION:
            raise EditStateError(f"edit state token version {version!r} is not supported (this build reads "
                                 f"version {TOKEN_VERSION})")
        try:
            text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise EditStateError("edit state token is corrupt (bad base64 or JSON)") from None
        # Checked before parsing: the JSON parser recurses once per level, so a deep token is a RecursionError.
        if json_depth(text) > MAX_TOKEN_DEPTH:
            raise EditStateError(f"edit state token nests deeper than {MAX_TOKEN_DEPTH} levels")
        try:
            body = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise EditStateError("edit state token is corrupt (bad base64 or JSON)") from None
        return cls._from_body(body, depth=0)

    @classmethod
    def _from_body(cls, body: Any, depth: int) -> "EditState":
        if not isinstance(body, list) or not 2 <= len(body) <= 7:
            raise EditStateError("edit state token has the wrong shape")
        body = body + [None, None, 1.0, [], [], "const", None][len(body):]
        model, source, psi, edits, mixes, noise, cross = body
        parents = None
        if cross is not None:
            if depth >= MAX_GENERATIONS:
                raise EditStateError(f"too many generations of crossbreeding (at most {MAX_GENERATIONS})")
            if not isinstance(cross, list) or len(cross) != 3 or not isinstance(cross[2], list):
                raise EditStateError("edit state token has the wrong shape")
            parents = Cross(cls._from_body(cross[0], depth + 1), cls._from_body(cross[1], depth + 1),
                            tuple(cross[2]))
        if isinstance(source, str):
            seed, latent = None, source
        else:
            seed, latent = source, None
        if not isinstance(edits, list) or not isinstance(mixes, list):
            raise EditStateError("edit state token has the wrong shape")
        if any(not isinstance(e, list) or len(e) != 2 for e in edits + mixes):
            raise EditStateError("edits and mixes must be pairs")
        return cls(model=model, seed=seed, latent=latent, psi=psi, edits=tuple(tuple(e) for e in edits),
                   mixes=tuple(tuple(m) for m in mixes), noise=noise, cross=parents)

    # ---- helpers for callers -----------------------------------------------------------------------------------
    def with_edit(self, direction: str, amount: float) -> "EditState":
        """A copy with `direction` set to `amount` (added, replaced, or removed when amount is 0)."""
        edits = [e for e in self.edits if e[0] != direction]
        if amount != 0:
            edits.append((direction, float(amount)))
        return dataclasses.replace(self, edits=tuple(edits))

    def replace(self, **changes: Any) -> "EditState":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


def _pairs(value: Any, what: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(what)
    out = list(value)
    for item in out:
        if isinstance(item, (str, bytes)) or len(item) != 2:
            raise TypeError(what)
    return out


def _as_float(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise EditStateError(f"{what} must be a number, got {x!r}")
    f = float(x)
    if not math.isfinite(f):
        raise EditStateError(f"{what} must be finite, got {x!r}")
    return f


def _check_seed(seed: Any, what: str) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EditStateError(f"{what} must be an integer, got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise EditStateError(f"{what} {seed} is out of range [0, 2^32)")


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings ignored), without parsing it.

    Linear time and constant stack, so it is safe on any input; malformed text gets a number, the parser rejects it.
    """
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")
