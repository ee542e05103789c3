"""Procedural side-view sneakers on white: a training set that needs no internet.

Each sneaker is drawn from a seed. A numpy Generator first picks a family (runner, court high-top, skate, slip-on,
chunky "dad" shoe, trail), whose ranges set the proportions (sole style and thickness, toe box, low/mid/high top),
then a material (mesh, suede, leather, canvas), a named colourway (triple white, panda, bred, navy/gum, earth ...),
a pattern and a side logo. Shapes are smooth closed curves (Catmull-Rom through a few key points) drawn with
Pillow at 4x the target size; NumPy adds the material's texture, soft shading and a blurred ground shadow, and
LANCZOS downsampling gives anti-aliased edges without a rasteriser of our own.

The shoe is seen from the side with the toe pointing LEFT, centred on a pure white canvas, about 80% of its width,
like the normalised webshop photos that `sneakergan prepare` produces. The canvas is square or landscape
(`aspect=(4, 3)`: side views are wide).

    img, params = render_sneaker(seed=7, resolution=128, aspect=(4, 3))   # 128 x 96
    write_synth_dataset(Path("synth.zip"), count=1000, resolution=128, seed=0, aspect=(4, 3))

The dataset layout is the one StyleGAN2-ADA's dataset tool writes (`00000/img00000000.png`, `dataset.json`), plus
`params.json` with every image's rendering parameters (family, material, colourway ... : tests check the shares).
"""

from __future__ import annotations

import colorsys
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 4
TOPS = ("low", "mid", "high")  # class ids 0, 1, 2 when labels are written
FAMILIES = ("runner", "court", "skate", "slipon", "dad", "trail")
FAMILY_SHARES = (0.2, 0.18, 0.16, 0.14, 0.16, 0.16)
FAMILY_TABLE = dict(zip(FAMILIES, FAMILY_SHARES))
MATERIALS = ("mesh", "suede", "leather", "canvas")
COLOURWAYS = ("triple_white", "triple_black", "white_accent", "panda", "bred", "grey_volt", "navy_gum", "earth",
              "pastel", "bold", "mono")
# The coarse colour group of each colourway (what a curator's taste or a test can key on).
SCHEMES = ("white", "black", "mono", "bold", "earth")
SCHEME_OF = {"triple_white": "white", "white_accent": "white", "pastel": "white", "triple_black": "black",
             "panda": "black", "bred": "black", "grey_volt": "mono", "mono": "mono", "navy_gum": "mono",
             "bold": "bold", "earth": "earth"}
PATTERNS = ("none", "stripes", "dots", "blocks", "checker")
LOGOS = ("swoosh", "bars", "band", "badge", "wave", "none")
WHITE = (255, 255, 255)

Point = tuple[float, float]
Weights = dict[str, float]


@dataclass(frozen=True)
class Family:
    """The ranges one sneaker family draws its proportions and looks from (uniform ranges, weighted choices)."""

    sole: str  # foam | cup | vulc | chunky | lug
    tops: tuple[float, float, float]  # shares of low / mid / high
    midsole_h: tuple[float, float]
    outsole_h: tuple[float, float]
    toe_spring: tuple[float, float]
    heel_lift: tuple[float, float]  # midsole thickness at the heel / at the toe
    toe_h: tuple[float, float]
    laces: float  # probability of laces (else an elastic gore)
    materials: Weights
    colourways: Weights
    logos: Weights
    patterns: Weights


_PLAIN = {"none": 0.6, "stripes": 0.12, "dots": 0.08, "blocks": 0.15, "checker": 0.05}
FAMILY_SPECS: dict[str, Family] = {
    "runner": Family("foam", (0.9, 0.1, 0.0), (0.06, 0.1), (0.015, 0.025), (0.03, 0.05), (1.4, 1.9), (0.085, 0.11),
                     1.0, {"mesh": 0.75, "suede": 0.1, "leather": 0.05, "canvas": 0.1},
                     {"triple_white": 0.1, "triple_black": 0.12, "white_accent": 0.15, "grey_volt": 0.15,
                      "bold": 0.2, "pastel": 0.1, "mono": 0.1, "navy_gum": 0.08},
                     {"swoosh": 0.4, "bars": 0.3, "band": 0.1, "badge": 0.05, "wave": 0.05, "none": 0.1},
                     {"none": 0.55, "stripes": 0.2, "dots": 0.05, "blocks": 0.2, "checker": 0.0}),
    "court": Family("cup", (0.1, 0.2, 0.7), (0.055, 0.075), (0.025, 0.035), (0.008, 0.02), (1.0, 1.1), (0.11, 0.13),
                    1.0, {"mesh": 0.05, "suede": 0.2, "leather": 0.7, "canvas": 0.05},
                    {"triple_white": 0.15, "triple_black": 0.08, "white_accent": 0.25, "panda": 0.17, "bred": 0.2,
                     "navy_gum": 0.05, "bold": 0.1},
                    {"swoosh": 0.45, "bars": 0.1, "band": 0.05, "badge": 0.25, "wave": 0.0, "none": 0.15}, _PLAIN),
    "skate": Family("vulc", (0.6, 0.35, 0.05), (0.05, 0.07), (0.02, 0.03), (0.005, 0.015), (1.0, 1.05),
                    (0.12, 0.15), 1.0, {"mesh": 0.0, "suede": 0.55, "leather": 0.1, "canvas": 0.35},
                    {"triple_black": 0.15, "panda": 0.25, "navy_gum": 0.2, "bold": 0.15, "earth": 0.1, "mono": 0.15},
                    {"swoosh": 0.1, "bars": 0.1, "band": 0.1, "badge": 0.1, "wave": 0.5, "none": 0.1},
                    {"none": 0.6, "stripes": 0.05, "dots": 0.05, "blocks": 0.1, "checker": 0.2}),
    "slipon": Family("vulc", (1.0, 0.0, 0.0), (0.045, 0.06), (0.02, 0.028), (0.005, 0.012), (1.0, 1.03),
                     (0.11, 0.13), 0.0, {"mesh": 0.05, "suede": 0.1, "leather": 0.1, "canvas": 0.75},
                     {"triple_white": 0.15, "triple_black": 0.2, "panda": 0.15, "navy_gum": 0.1, "bold": 0.15,
                      "pastel": 0.1, "mono": 0.15},
                     {"swoosh": 0.0, "bars": 0.0, "band": 0.1, "badge": 0.1, "wave": 0.1, "none": 0.7},
                     {"none": 0.45, "stripes": 0.15, "dots": 0.1, "blocks": 0.0, "checker": 0.3}),
    "dad": Family("chunky", (0.55, 0.45, 0.0), (0.11, 0.16), (0.02, 0.03), (0.015, 0.03), (1.1, 1.3), (0.12, 0.145),
                  1.0, {"mesh": 0.3, "suede": 0.35, "leather": 0.35, "canvas": 0.0},
                  {"triple_white": 0.3, "white_accent": 0.2, "pastel": 0.2, "grey_volt": 0.1, "earth": 0.1,
                   "bold": 0.1},
                  {"swoosh": 0.2, "bars": 0.2, "band": 0.2, "badge": 0.15, "wave": 0.1, "none": 0.15},
                  {"none": 0.6, "stripes": 0.05, "dots": 0.0, "blocks": 0.35, "checker": 0.0}),
    "trail": Family("lug", (0.3, 0.6, 0.1), (0.07, 0.1), (0.025, 0.035), (0.02, 0.04), (1.15, 1.4), (0.1, 0.125),
                    1.0, {"mesh": 0.6, "suede": 0.3, "leather": 0.1, "canvas": 0.0},
                    {"earth": 0.35, "triple_black": 0.15, "grey_volt": 0.2, "bold": 0.15, "navy_gum": 0.15},
                    {"swoosh": 0.15, "bars": 0.35, "band": 0.2, "badge": 0.1, "wave": 0.0, "none": 0.2},
                    {"none": 0.6, "stripes": 0.1, "dots": 0.0, "blocks": 0.3, "checker": 0.0}),
}
# Height of the collar above the sole's top at the heel, by top.
UPPER_H = {"low": (0.2, 0.25), "mid": (0.29, 0.34), "high": (0.4, 0.47)}


# ----------------------------------------------------------------------------------------------------------------
# Geometry


def _catmull_rom(points: list[Point], samples: int = 8, closed: bool = True) -> np.ndarray:
    """Smooth curve through `points` (uniform Catmull-Rom), returned as an [M, 2] array."""
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    if closed:
        idx = np.arange(n)
        p0, p1, p2, p3 = p[(idx - 1) % n], p[idx], p[(idx + 1) % n], p[(idx + 2) % n]
    else:
        # Repeat the end points so the curve starts and ends on them.
        q = np.concatenate([p[:1], p, p[-1:]])
        p0, p1, p2, p3 = q[:-3], q[1:-2], q[2:-1], q[3:]
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[None, :, None]
    p0, p1, p2, p3 = (a[:, None, :] for a in (p0, p1, p2, p3))
    curve = 0.5 * (
        2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    curve = curve.reshape(-1, 2)
    if not closed:
        curve = np.concatenate([curve, p[-1:]])
    return curve


class _Frame:
    """Maps shoe units (x: 0 = toe .. 1 = heel, y: up from the ground) to supersampled pixels."""

    def __init__(self, width: int, height: int, length_px: float, x0: float, ground: float):
        self.width, self.height = width, height
        self.size = max(width, height)
        self.length_px, self.x0, self.ground = length_px, x0, ground

    def px(self, pts) -> list[Point]:
        a = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        x = self.x0 + a[:, 0] * self.length_px
        y = self.ground - a[:, 1] * self.length_px
        return list(zip(x.tolist(), y.tolist()))

    def w(self, units: float) -> int:
        return max(1, round(units * self.length_px))


# ----------------------------------------------------------------------------------------------------------------
# Colour


def _rgb(h: float, l: float, s: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hls_to_rgb(h % 1.0, min(max(l, 0.0), 1.0), min(max(s, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def _mix(c1, c2, t: float) -> tuple[int, int, int]:
    return tuple(round(a + (b - a) * t) for a, b in zip(c1, c2))


def _hex(c) -> str:
    return "#%02x%02x%02x" % tuple(c)


def _pick(rng: np.random.Generator, weights: Weights) -> str:
    names = [k for k, v in weights.items() if v > 0]
    p = np.array([weights[k] for k in names], dtype=np.float64)
    return str(rng.choice(names, p=p / p.sum()))


def _palette(rng: np.random.Generator, colourway: str) -> dict[str, tuple[int, int, int]]:
    """Colour roles of one named colourway. Hues come from one base hue and fixed offsets, so they go together."""
    h = rng.random()
    bold = lambda hue, l=0.5: _rgb(hue, l + rng.uniform(-0.08, 0.08), rng.uniform(0.65, 0.95))  # noqa: E731
    offwhite = _rgb(rng.uniform(0.08, 0.15), rng.uniform(0.93, 0.98), rng.uniform(0.0, 0.4))
    light_grey = _rgb(h, rng.uniform(0.78, 0.86), rng.uniform(0.0, 0.08))
    mid_grey = _rgb(h, rng.uniform(0.5, 0.62), rng.uniform(0.0, 0.08))
    black = _rgb(h, rng.uniform(0.08, 0.16), rng.uniform(0.0, 0.15))
    dark_sole = _rgb(h, rng.uniform(0.12, 0.25), rng.uniform(0.0, 0.1))
    gum = _rgb(rng.uniform(0.07, 0.1), rng.uniform(0.4, 0.55), rng.uniform(0.45, 0.7))
    red = _rgb(rng.uniform(-0.02, 0.02), rng.uniform(0.4, 0.5), rng.uniform(0.75, 0.9))
    volt = _rgb(rng.uniform(0.17, 0.22), rng.uniform(0.5, 0.6), rng.uniform(0.85, 1.0))
    navy = _rgb(rng.uniform(0.6, 0.66), rng.uniform(0.16, 0.26), rng.uniform(0.45, 0.7))
    flip = lambda p_: rng.random() < p_  # noqa: E731

    if colourway == "triple_white":
        p = dict(base=offwhite, toe=offwhite, heel=offwhite, logo=offwhite if flip(0.5) else light_grey,
                 eyestay=offwhite, collar=offwhite, tongue=offwhite, laces=WHITE, midsole=WHITE,
                 outsole=rng.choice([offwhite, light_grey, gum], p=[0.4, 0.35, 0.25]), pattern=light_grey,
                 overlay=light_grey if flip(0.5) else offwhite, sole2=light_grey)
    elif colourway == "triple_black":
        p = dict(base=black, toe=black, heel=black, logo=_mix(black, WHITE, 0.25) if flip(0.4) else black,
                 eyestay=black, collar=black, tongue=black, laces=black, midsole=_mix(black, WHITE, 0.05),
                 outsole=(22, 22, 22), pattern=_mix(black, WHITE, 0.12), overlay=_mix(black, WHITE, 0.1),
                 sole2=_mix(black, WHITE, 0.15))
    elif colourway == "white_accent":
        accent = bold(h)
        accent2 = black if flip(0.4) else bold(h + rng.choice([0.0, 0.5, 0.33]), 0.45)
        p = dict(base=offwhite, toe=offwhite if flip(0.6) else accent, heel=accent, logo=accent2,
                 eyestay=accent if flip(0.5) else offwhite, collar=accent2, tongue=offwhite, laces=offwhite,
                 midsole=WHITE, outsole=rng.choice([dark_sole, gum, accent], p=[0.5, 0.25, 0.25]), pattern=accent,
                 overlay=accent, sole2=accent if flip(0.5) else light_grey)
    elif colourway == "panda":
        p = dict(base=offwhite, toe=black, heel=black, logo=black, eyestay=black, collar=black, tongue=offwhite,
                 laces=offwhite if flip(0.6) else black, midsole=WHITE, outsole=black if flip(0.6) else gum,
                 pattern=black, overlay=black, sole2=black)
        if flip(0.35):  # the inverse: white overlays on black
            p.update(base=black, tongue=black, toe=offwhite, heel=offwhite, logo=offwhite, eyestay=offwhite,
                     overlay=offwhite, pattern=offwhite)
    elif colourway == "bred":
        p = dict(base=black, toe=black if flip(0.6) else red, heel=red, logo=red if flip(0.5) else WHITE,
                 eyestay=black, collar=red if flip(0.5) else black, tongue=black, laces=black if flip(0.5) else WHITE,
                 midsole=WHITE if flip(0.6) else black, outsole=red if flip(0.5) else (25, 25, 25), pattern=red,
                 overlay=red, sole2=red)
    elif colourway == "grey_volt":
        base = mid_grey if flip(0.5) else light_grey
        p = dict(base=base, toe=_mix(base, black, 0.3), heel=_mix(base, black, 0.3), logo=volt, eyestay=base,
                 collar=_mix(base, black, 0.4), tongue=base, laces=volt if flip(0.3) else offwhite,
                 midsole=WHITE if flip(0.5) else volt, outsole=dark_sole, pattern=volt, overlay=_mix(base, black, 0.3),
                 sole2=volt)
    elif colourway == "navy_gum":
        p = dict(base=navy, toe=navy, heel=_mix(navy, black, 0.3), logo=offwhite, eyestay=navy,
                 collar=_mix(navy, black, 0.3), tongue=navy, laces=offwhite if flip(0.6) else navy,
                 midsole=offwhite, outsole=gum, pattern=offwhite, overlay=_mix(navy, WHITE, 0.25), sole2=gum)
    elif colourway == "earth":
        tan = _rgb(rng.uniform(0.06, 0.12), rng.uniform(0.45, 0.7), rng.uniform(0.3, 0.6))
        olive = _rgb(rng.uniform(0.14, 0.25), rng.uniform(0.25, 0.4), rng.uniform(0.2, 0.4))
        brown = _rgb(rng.uniform(0.04, 0.08), rng.uniform(0.2, 0.3), rng.uniform(0.3, 0.5))
        base, second = [tan, olive, brown][rng.integers(3)], [brown, offwhite, olive][rng.integers(3)]
        p = dict(base=base, toe=second, heel=second, logo=offwhite, eyestay=second, collar=brown, tongue=base,
                 laces=offwhite, midsole=offwhite, outsole=gum if flip(0.6) else brown, pattern=second,
                 overlay=second, sole2=olive)
    elif colourway == "pastel":
        c0 = _rgb(h, rng.uniform(0.78, 0.86), rng.uniform(0.45, 0.75))
        c1 = _rgb(h + rng.choice([0.15, 0.5, -0.15]), rng.uniform(0.76, 0.84), rng.uniform(0.45, 0.75))
        p = dict(base=c0, toe=offwhite if flip(0.5) else c1, heel=c1, logo=c1 if flip(0.6) else offwhite,
                 eyestay=c1, collar=c1, tongue=c0, laces=WHITE, midsole=WHITE, outsole=c1 if flip(0.5) else offwhite,
                 pattern=c1, overlay=c1, sole2=c1)
    elif colourway == "bold":
        offs = {"complement": [0.5, 0.0], "triad": [1 / 3, 2 / 3], "analogous": [0.08, -0.08]}
        o = offs[str(rng.choice(list(offs)))]
        c0, c1, c2 = bold(h), bold(h + o[0]), bold(h + o[1], 0.4)
        p = dict(base=c0, toe=c1, heel=c1, logo=WHITE if flip(0.5) else c2, eyestay=c2, collar=c2, tongue=c1,
                 laces=WHITE if flip(0.6) else c2, midsole=WHITE if flip(0.7) else c1,
                 outsole=dark_sole if flip(0.6) else c2, pattern=c1, overlay=c2, sole2=c1)
    else:  # mono: one hue in several tones
        s = rng.uniform(0.35, 0.9)
        l0 = rng.uniform(0.3, 0.6)
        tone = lambda dl: _rgb(h, l0 + dl, s)  # noqa: E731
        p = dict(base=tone(0), toe=tone(-0.12), heel=tone(-0.12), logo=tone(0.3), eyestay=tone(-0.08),
                 collar=tone(-0.18), tongue=tone(0.05), laces=tone(0.35) if flip(0.5) else WHITE,
                 midsole=WHITE if flip(0.6) else tone(0.38), outsole=tone(-0.25), pattern=tone(0.15),
                 overlay=tone(-0.1), sole2=tone(0.2))
    p = {k: tuple(int(x) for x in v) for k, v in p.items()}
    # Outline: a darker version of the upper, never lighter than mid grey, so white shoes stand off white.
    p["outline"] = _mix(_mix(p["base"], (0, 0, 0), 0.55), (90, 90, 90), 0.4)
    return p


# ----------------------------------------------------------------------------------------------------------------
# Parameters


def sample_params(seed: int, family: str | None = None) -> dict:
    """All choices for one sneaker, drawn from `seed` (JSON-serialisable; `render_params` draws them).

    `family` forces one family (for contact sheets and tests); by default it is drawn with `FAMILY_SHARES`.
    """
    rng = np.random.default_rng(seed)
    fam_name = str(rng.choice(FAMILIES, p=FAMILY_SHARES))
    if family is not None:
        if family not in FAMILY_SPECS:
            raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
        fam_name = family
    fam = FAMILY_SPECS[fam_name]
    u = lambda r: float(rng.uniform(*r))  # noqa: E731
    top = str(rng.choice(TOPS, p=fam.tops))
    colourway = _pick(rng, fam.colourways)
    pattern = _pick(rng, fam.patterns)
    logo = _pick(rng, fam.logos)
    material = _pick(rng, fam.materials)
    colors = _palette(rng, colourway)
    outsole_h, midsole_h, heel_lift = u(fam.outsole_h), u(fam.midsole_h), u(fam.heel_lift)
    laces = bool(rng.random() < fam.laces)
    return {
        "seed": int(seed),
        "family": fam_name,
        "sole": fam.sole,
        "top": top,
        "label": TOPS.index(top),
        "material": material,
        "colourway": colourway,
        "scheme": SCHEME_OF[colourway],
        "pattern": pattern,
        "pattern_scale": float(rng.uniform(0.03, 0.07)),
        "pattern_angle": float(rng.choice([0.0, 0.0, 30.0, -30.0, 90.0])),
        "logo": logo,
        "toe_cap": bool(rng.random() < (0.8 if fam_name in ("court", "dad") else 0.5)),
        "heel_counter": bool(rng.random() < 0.7),
        "eyestay": bool(laces and rng.random() < 0.7),
        "pull_tab": bool(rng.random() < (0.6 if fam_name in ("runner", "trail") else 0.3)),
        "air_window": bool(fam_name in ("runner", "dad") and rng.random() < 0.3),
        "midsole_stripe": bool(fam.sole in ("vulc", "cup") or rng.random() < 0.2),
        "laces": laces,
        "ankle_strap": bool(fam_name == "court" and top == "high" and rng.random() < 0.35),
        "perforations": bool(fam_name == "court" and rng.random() < 0.6),
        "toe_bumper": bool(fam.sole in ("vulc", "lug")),
        "mudguard": bool(fam_name in ("dad", "trail") and rng.random() < 0.7),
        "lug_count": int(rng.integers(9, 15)),
        "wave_count": int(rng.integers(2, 4)),
        "padded_collar": bool(fam_name in ("skate", "court", "dad") or rng.random() < 0.2),
        "width_frac": float(rng.uniform(0.76, 0.84)),
        "outsole_h": outsole_h,
        "midsole_h": midsole_h,
        "heel_lift": heel_lift,
        "toe_spring": u(fam.toe_spring),
        "toe_h": u(fam.toe_h),
        "throat_x": float(rng.uniform(0.3, 0.38)),
        "collar_x": float(rng.uniform(0.58, 0.65)),
        "collar_h": float(outsole_h + midsole_h * heel_lift + u(UPPER_H[top])),
        "collar_dip": float(rng.uniform(0.02, 0.06)) if top == "low" else float(rng.uniform(-0.01, 0.03)),
        "lace_count": int(rng.integers(4, 8)) + (3 if top == "high" else 0),
        "shading": float(rng.uniform(0.12, 0.22)),
        "colors": {k: _hex(v) for k, v in colors.items()},
    }


def _color(params: dict, role: str) -> tuple[int, int, int]:
    h = params["colors"].get(role) or params["colors"]["base"]
    h = h.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


# ----------------------------------------------------------------------------------------------------------------
# Drawing

LUG_H = 0.012  # how far the lugs of a trail sole stand below the sole's base line


def _smoothstep(x, a: float, b: float):
    t = np.clip((np.asarray(x, dtype=np.float64) - a) / (b - a), 0, 1)
    return t * t * (3 - 2 * t)


def _sole_curves(p: dict) -> tuple[Callable, Callable]:
    """bottom(x) and top(x) of the sole in shoe units: toe spring at the front, the family's heel lift and style."""
    ts, to, tm = p["toe_spring"], p["outsole_h"], p["midsole_h"]
    lift, style = p.get("heel_lift", 1.15), p.get("sole", "foam")
    base = LUG_H if style == "lug" else 0.0

    def bottom(x):
        x = np.asarray(x, dtype=np.float64)
        y = base + ts * np.clip((0.28 - x) / 0.28, 0, None) ** 2
        if style == "foam":  # a bevelled heel
            y = y + 0.012 * np.clip((x - 0.9) / 0.1, 0, None) ** 2
        return y

    def top(x):
        x = np.asarray(x, dtype=np.float64)
        y = bottom(x) + to + tm * (1 + (lift - 1) * _smoothstep(x, 0.15, 0.85))
        if style == "chunky":  # the layered, wavy top line of a dad shoe's midsole
            y = y + 0.012 * np.sin(2 * np.pi * p.get("wave_count", 3) * x + 0.6)
        return y

    return bottom, top


def _upper_outline(p: dict, top: Callable) -> tuple[list[Point], list[Point], list[Point]]:
    """Key points of the upper (closed), of the throat (lacing line) and of the collar line, in shoe units."""
    s_toe, s_mid, s_heel = float(top(0.02)), float(top(0.5)), float(top(0.97))
    th, tx, cx, ch, dip = p["toe_h"], p["throat_x"], p["collar_x"], p["collar_h"], p["collar_dip"]
    throat_y0 = s_mid + th + 0.07
    throat = [(tx, throat_y0), (cx, ch)]
    collar = [(cx, ch), (cx + 0.06, ch - dip * 0.6), (0.77, ch - dip), (0.92, ch + 0.005), (0.985, ch - 0.035)]
    outline = [
        (0.03, s_toe - 0.01),
        (-0.005, s_toe + 0.04),
        (0.04, s_toe + th * 0.9),
        (0.16, s_mid + th + 0.025),
        (tx, throat_y0),
        (cx, ch),
        (cx + 0.06, ch - dip * 0.6),
        (0.77, ch - dip),
        (0.92, ch + 0.005),
        (0.985, ch - 0.035),
        (1.012, (ch + s_heel) * 0.45),
        (0.995, s_heel + 0.01),
        (0.9, s_heel - 0.01),
        (0.5, s_mid - 0.02),
        (0.15, s_toe - 0.02),
    ]
    return outline, throat, collar


def _draw_pattern(d: ImageDraw.ImageDraw, f: _Frame, p: dict, color) -> None:
    """Fill the upper layer with the chosen pattern (clipped later by the upper's mask)."""
    kind, sc = p["pattern"], p["pattern_scale"]
    if kind == "none":
        return
    S = f.size
    step = max(2, f.w(sc))
    if kind == "stripes":
        ang = np.deg2rad(p["pattern_angle"])
        # Parallel bands across the whole canvas, rotated by the pattern angle.
        dx, dy = np.cos(ang), -np.sin(ang)  # band direction (pixels, y down)
        nx, ny = -dy, dx
        for k in range(-S // step - 2, S // step + 2, 2):
            cx0, cy0 = S / 2 + nx * k * step, S / 2 + ny * k * step
            a = (cx0 - dx * S, cy0 - dy * S)
            b = (cx0 + dx * S, cy0 + dy * S)
            d.polygon([a, b, (b[0] + nx * step, b[1] + ny * step), (a[0] + nx * step, a[1] + ny * step)], fill=color)
    elif kind == "dots":
        r = step * 0.32
        for j, y in enumerate(range(0, S, step)):
            for x in range((step // 2) * (j % 2), S, step):
                d.ellipse([x - r, y - r, x + r, y + r], fill=color)
    elif kind == "checker":
        for j, y in enumerate(range(0, S, step)):
            for i, x in enumerate(range(0, S, step)):
                if (i + j) % 2 == 0:
                    d.rectangle([x, y, x + step - 1, y + step - 1], fill=color)
    elif kind == "blocks":
        # Colour blocking: the rear part (from a slanted cut) in the second colour.
        xa = 0.45 + sc * 3
        d.polygon(f.px([(xa, -0.2), (xa + 0.15, 0.9), (1.3, 0.9), (1.3, -0.2)]), fill=color)


def _draw_logo(d: ImageDraw.ImageDraw, f: _Frame, p: dict, s_mid: float, throat_y0: float, color, edge) -> None:
    kind = p["logo"]
    mid_y = s_mid + 0.5 * (throat_y0 - s_mid)
    if kind == "swoosh":
        # A tapered curve: thick near the heel, sweeping down under the laces and up to a point near the toe.
        t = np.linspace(0, 1, 24)[:, None]
        a, b, c = np.array([0.86, mid_y + 0.04]), np.array([0.48, s_mid - 0.03]), np.array([0.2, mid_y + 0.02])
        centre = (1 - t) ** 2 * a + 2 * (1 - t) * t * b + t**2 * c
        tangent = 2 * (1 - t) * (b - a) + 2 * t * (c - b)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        width = 0.055 * (1 - t[:, 0]) ** 0.7 + 0.004
        upper = centre + normal * width[:, None] * 0.5
        lower = centre - normal * width[:, None] * 0.5
        d.polygon(f.px(np.concatenate([upper, lower[::-1]])), fill=color, outline=edge, width=f.w(0.004))
    elif kind == "wave":
        # A skate shoe's side stripe: a band that dips and rises from the heel to the toe box.
        t = np.linspace(0, 1, 32)
        x = 0.9 - 0.68 * t
        y = mid_y + 0.03 * np.sin(np.pi * 1.5 * t) - 0.02 * t
        w = 0.03 * (1 - 0.6 * t) + 0.006
        d.polygon(f.px(np.concatenate([np.stack([x, y + w / 2], 1), np.stack([x, y - w / 2], 1)[::-1]])),
                  fill=color, outline=edge, width=f.w(0.003))
    elif kind == "bars":
        # Slanted parallel bars from the lacing down to the sole.
        for k in range(3):
            x = 0.36 + k * 0.075
            d.polygon(f.px([(x, throat_y0 - 0.01), (x + 0.04, throat_y0 - 0.01),
                            (x + 0.12, s_mid + 0.01), (x + 0.08, s_mid + 0.01)]),
                      fill=color, outline=edge, width=f.w(0.003))
    elif kind == "band":
        d.polygon(f.px([(0.22, mid_y - 0.025), (0.9, mid_y - 0.005), (0.9, mid_y + 0.03), (0.25, mid_y + 0.01)]),
                  fill=color, outline=edge, width=f.w(0.003))
    elif kind == "badge":
        cx, cy, r = 0.72, mid_y + 0.01, 0.045
        d.ellipse(f.px([(cx - r, cy + r), (cx + r, cy - r)]), fill=color, outline=edge, width=f.w(0.004))


def _material_factor(material: str, shape: tuple[int, int], unit_px: float, seed: int) -> np.ndarray:
    """A multiplicative brightness texture [H, W] for a material (1 = unchanged)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    if material == "mesh":  # a grid of small holes
        sp = max(3, round(unit_px * 0.014))
        holes = ((xx % sp) < sp // 2) & ((yy % sp) < sp // 2)
        return 1.0 - 0.1 * holes
    if material == "canvas":  # a fine weave
        return 1.0 - 0.05 * (((xx // 2) % 2) ^ ((yy // 2) % 2))
    if material == "suede":  # soft blotches of nap
        rng = np.random.default_rng(seed)
        small = rng.normal(size=(max(2, h // 8), max(2, w // 8))).astype(np.float32)
        noise = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))
        return 1.0 + 0.06 * noise
    return np.ones(shape)  # leather: smooth (its highlight is added with the shading)


def _shade(arr: np.ndarray, upper: np.ndarray, shoe: np.ndarray, p: dict, f: _Frame) -> np.ndarray:
    """Soft shading of a flat drawing: light from above, darker edges of the rounded upper, the material's texture."""
    out = arr.astype(np.float32)
    ys = np.nonzero(shoe.any(axis=1))[0]
    y0, y1 = (ys.min(), ys.max()) if len(ys) else (0, arr.shape[0])
    rel = (np.arange(arr.shape[0], dtype=np.float32) - y0) / max(1, y1 - y0)
    s = p.get("shading", 0.16)
    vertical = (1.0 + s * (0.35 - rel))[:, None]
    # The blurred mask is ~1 deep inside the upper and falls towards its outline: a cheap rounded look.
    soft = Image.fromarray((upper * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(f.length_px * 0.03))
    rounded = 1.0 - s * 0.9 * (1.0 - np.asarray(soft, dtype=np.float32) / 255)
    texture = _material_factor(p.get("material", "leather"), upper.shape, f.length_px, p["seed"])
    factor = np.where(upper, vertical * rounded * texture, np.where(shoe, vertical, 1.0))
    out *= factor[..., None]
    if p.get("material") == "leather":  # a soft specular band along the upper
        hl_y = y0 + 0.35 * (y1 - y0)
        band = np.exp(-(((np.arange(arr.shape[0]) - hl_y) / (f.length_px * 0.035)) ** 2)).astype(np.float32)
        glow = (0.18 * band)[:, None, None] * upper[..., None]
        out = out + (255 - out) * glow
    return np.clip(out, 0, 255)


def _ground_shadow(f: _Frame, p: dict) -> np.ndarray:
    """A soft elliptical shadow under the sole: a multiplicative factor [H, W]."""
    mask = Image.new("L", (f.width, f.height), 0)
    rx, ry = 0.52 * f.length_px, 0.035 * f.length_px
    cx, cy = f.x0 + 0.5 * f.length_px, f.ground
    ImageDraw.Draw(mask).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(f.length_px * 0.02)), dtype=np.float32) / 255
    return 1.0 - p.get("shadow", 0.14) * soft


def canvas_size(resolution: int, aspect: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """(width, height) of an image whose longer side is `resolution` at aspect width:height."""
    aw, ah = aspect
    if aw <= 0 or ah <= 0:
        raise ValueError(f"aspect must be positive, got {aw}:{ah}")
    if aw >= ah:
        return resolution, max(1, round(resolution * ah / aw))
    return max(1, round(resolution * aw / ah)), resolution


def render_params(params: dict, resolution: int, aspect: tuple[int, int] = (1, 1)) -> Image.Image:
    """Draw the sneaker described by `params` (from `sample_params`); the image's longer side is `resolution`."""
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8, got {resolution}")
    out_w, out_h = canvas_size(resolution, aspect)
    W, H = out_w * SUPERSAMPLE, out_h * SUPERSAMPLE
    bottom, top = _sole_curves(params)
    outline_pts, throat, collar = _upper_outline(params, top)
    max_y = params["collar_h"] + 0.06  # tongue and pull tab stick out above the collar
    # The shoe is ~80% of the canvas width, unless a tall shoe on a wide canvas would not fit in its height.
    length_px = min(params["width_frac"] * W, 0.9 * H / max_y)
    f = _Frame(W, H, length_px, x0=(W - length_px) / 2, ground=H / 2 + max_y * length_px / 2)
    col = lambda role: _color(params, role)  # noqa: E731
    edge = col("outline")
    lw = f.w(0.006)

    canvas = Image.new("RGB", (W, H), WHITE)
    d = ImageDraw.Draw(canvas)
    shoe_mask = Image.new("L", (W, H), 0)
    md = ImageDraw.Draw(shoe_mask)

    # Behind the upper: the tongue at the front of the collar, a pull tab at the heel.
    cx, ch = throat[1]
    if params.get("laces", True):
        tongue = _catmull_rom([(cx - 0.08, ch - 0.07), (cx - 0.025, ch + 0.03), (cx + 0.03, ch + 0.045),
                               (cx + 0.08, ch + 0.0), (cx + 0.06, ch - 0.1)], samples=6)
        d.polygon(f.px(tongue), fill=col("tongue"), outline=edge, width=lw)
        md.polygon(f.px(tongue), fill=255)
    if params["pull_tab"]:
        hx, hy = 0.93, ch + 0.005
        box = f.px([(hx - 0.025, hy + 0.05), (hx + 0.025, hy - 0.04)])
        d.rounded_rectangle(box, radius=f.w(0.012), fill=col("collar"), outline=edge, width=lw)
        md.rounded_rectangle(box, radius=f.w(0.012), fill=255)

    # The upper: a layer with base colour, pattern and panels, clipped by the upper's silhouette.
    upper_poly = f.px(_catmull_rom(outline_pts, samples=8))
    layer = Image.new("RGB", (W, H), col("base"))
    ld = ImageDraw.Draw(layer)
    _draw_pattern(ld, f, params, col("pattern"))
    s_toe, s_mid, s_heel = float(top(0.02)), float(top(0.5)), float(top(0.97))
    if params.get("mudguard"):  # a low band all round the upper, just above the sole
        xs = np.linspace(-0.1, 1.1, 30)
        band = top(xs) + 0.045
        ld.polygon(f.px(list(zip(xs.tolist(), band.tolist())) + [(1.1, -0.2), (-0.1, -0.2)]),
                   fill=col("overlay"), outline=edge, width=lw)
    if params["toe_cap"]:
        r = (0.17, params["toe_h"] + 0.03)
        ld.ellipse(f.px([(0.04 - r[0], s_toe + r[1]), (0.04 + r[0], s_toe - r[1])]),
                   fill=col("toe"), outline=edge, width=lw)
        if params.get("perforations"):
            for i in range(4):
                for j in range(2):
                    ex, ey, rr = 0.04 + 0.03 * i, s_toe + 0.035 + 0.03 * j, 0.006
                    ld.ellipse(f.px([(ex - rr, ey + rr), (ex + rr, ey - rr)]), fill=_mix(col("toe"), edge, 0.6))
    if params["heel_counter"]:
        r = (0.24, (ch - s_heel) * 0.75)
        ld.ellipse(f.px([(1.0 - r[0], s_heel + r[1]), (1.0 + r[0], s_heel - r[1])]),
                   fill=col("heel"), outline=edge, width=lw)
    _draw_logo(ld, f, params, s_mid, throat[0][1], col("logo"), edge)
    # Eyestay band under the lacing and padding along the collar, both clipped to the upper.
    (tx, ty), (cx, cy) = throat
    dvec = np.array([cx - tx, cy - ty])
    dvec /= np.linalg.norm(dvec)
    nrm = np.array([dvec[1], -dvec[0]])  # points into the upper (below the lacing line)
    if params["eyestay"]:
        a, b = np.array([tx - 0.02, ty]), np.array([cx + 0.02, cy])
        ld.polygon(f.px([a - nrm * 0.02, b - nrm * 0.02, b + nrm * 0.055, a + nrm * 0.055]),
                   fill=col("eyestay"), outline=edge, width=lw)
    if not params.get("laces", True):  # a slip-on's elastic gore: a dark wedge with ribs
        a, b = np.array([cx - 0.07, cy + 0.005]), np.array([cx + 0.005, cy - 0.005])
        c = (a + b) / 2 + nrm * 0.09
        ld.polygon(f.px([a, b, c]), fill=_mix(col("collar"), (0, 0, 0), 0.35), outline=edge, width=lw)
        for t in np.linspace(0.2, 0.8, 4):
            q = a + (b - a) * t
            ld.line(f.px([q, q + (c - q) * 0.8]), fill=_mix(col("collar"), (0, 0, 0), 0.55), width=max(1, lw // 2))
    if params.get("ankle_strap"):
        a0, a1 = np.array([cx - 0.02, ch - 0.05]), np.array([0.98, ch - 0.09])
        ld.polygon(f.px([a0, a1, a1 - [0, 0.05], a0 - [0, 0.05]]), fill=col("overlay"), outline=edge, width=lw)
    pad = 0.07 if params.get("padded_collar") else 0.045
    ld.line(f.px(_catmull_rom(collar, samples=6, closed=False)), fill=col("collar"), width=f.w(pad), joint="curve")
    upper_mask = Image.new("L", (W, H), 0)
    ImageDraw.Draw(upper_mask).polygon(upper_poly, fill=255)
    canvas.paste(layer, (0, 0), upper_mask)
    md.polygon(upper_poly, fill=255)
    d.line(upper_poly + upper_poly[:1], fill=edge, width=lw, joint="curve")

    if params.get("laces", True):  # laces across the lacing line, eyelets just below it
        n = params["lace_count"]
        for k in range(n):
            t = (k + 0.5) / n
            pt = np.array([tx, ty]) + (np.array([cx, cy]) - np.array([tx, ty])) * t
            a, b = pt - nrm * 0.014 + dvec * 0.012, pt + nrm * 0.018 - dvec * 0.012
            d.line(f.px([a, b]), fill=edge, width=f.w(0.024))
            d.line(f.px([a, b]), fill=col("laces"), width=f.w(0.014))
            e = pt + nrm * 0.036
            r = 0.008
            d.ellipse(f.px([(e[0] - r, e[1] + r), (e[0] + r, e[1] - r)]), fill=edge)

    _draw_sole(d, md, canvas, f, params, bottom, top, col, edge, lw)

    shoe = np.asarray(shoe_mask.filter(ImageFilter.MaxFilter(2 * (lw // 2) + 3))) > 127
    upper = np.asarray(upper_mask) > 127
    shaded = _shade(np.asarray(canvas), upper, shoe, params, f)
    ground = np.asarray(canvas, dtype=np.float32) * _ground_shadow(f, params)[..., None]
    arr = np.where(shoe[..., None], shaded, ground)
    img = Image.fromarray(np.round(arr).astype(np.uint8), "RGB")
    return img.resize((out_w, out_h), Image.LANCZOS)


def _draw_sole(d, md, canvas: Image.Image, f: _Frame, params: dict, bottom: Callable, top: Callable, col, edge,
               lw: int) -> None:
    """The sole: midsole layer with the outsole band at the bottom, clipped by the sole's silhouette, in the family's
    style (foam with a bevelled heel, flat cupsole, vulcanised foxing, chunky layers, lugged trail sole)."""
    style = params.get("sole", "foam")
    xs = np.linspace(0.0, 1.0, 48)
    x_front, x_back = -0.025, 1.02
    bot, tp = bottom(xs), top(xs)
    sole_pts = (
        [(x_front, float(bottom(0.0)) + 0.3 * (float(top(0.0)) - float(bottom(0.0))))]
        + list(zip(xs.tolist(), bot.tolist()))
        + [(x_back, 0.5 * (float(top(1.0)) + float(bottom(1.0))))]
        + list(zip(xs[::-1].tolist(), tp[::-1].tolist()))
    )
    sole_poly = f.px(sole_pts)
    sole_layer = Image.new("RGB", (f.width, f.height), col("midsole"))
    sd = ImageDraw.Draw(sole_layer)
    xs_wide = np.linspace(-0.1, 1.1, 48)
    if style == "chunky":  # a second, wavy layer across the lower midsole
        mid = bottom(xs_wide) + params["outsole_h"] + 0.45 * params["midsole_h"] \
            + 0.01 * np.sin(2 * np.pi * (params.get("wave_count", 3) + 1) * xs_wide)
        sd.polygon(f.px(list(zip(xs_wide.tolist(), mid.tolist())) + [(1.1, -0.2), (-0.1, -0.2)]),
                   fill=col("sole2"), outline=edge, width=max(1, lw // 2))
    band_top = bottom(xs_wide) + params["outsole_h"]
    sd.polygon(f.px(list(zip(xs_wide.tolist(), band_top.tolist())) + [(1.1, -0.2), (-0.1, -0.2)]),
               fill=col("outsole"))
    if params["midsole_stripe"]:
        mid = bottom(xs_wide) + params["outsole_h"] + 0.55 * params["midsole_h"]
        stripe = col("logo") if style != "vulc" else col("outsole")
        sd.line(f.px(list(zip(xs_wide.tolist(), mid.tolist()))), fill=stripe, width=f.w(0.01))
    if style == "cup":  # stitching around the cupsole
        mid = bottom(xs_wide) + params["outsole_h"] + 0.75 * params["midsole_h"]
        pts = f.px(list(zip(xs_wide.tolist(), mid.tolist())))
        for i in range(0, len(pts) - 1, 2):
            sd.line([pts[i], pts[i + 1]], fill=_mix(col("midsole"), edge, 0.5), width=max(1, lw // 2))
    if params.get("toe_bumper"):  # a rubber cap over the front of the sole
        x1 = 0.14
        cap = [(-0.03, float(bottom(0.0))), (x1, float(bottom(x1))), (x1, float(top(x1)) + 0.025),
               (0.0, float(top(0.0)) + 0.035)]
        sd.polygon(f.px(cap), fill=col("outsole") if style == "lug" else col("midsole"), outline=edge, width=lw)
    if params["air_window"]:
        y0 = float(bottom(0.8)) + params["outsole_h"] + 0.012
        y1 = float(top(0.8)) - 0.012
        if y1 - y0 > 0.02:
            sd.rounded_rectangle(f.px([(0.74, y1), (0.9, y0)]), radius=f.w(0.01), fill=(170, 200, 220),
                                 outline=edge, width=f.w(0.004))
    smask = Image.new("L", (f.width, f.height), 0)
    sm = ImageDraw.Draw(smask)
    sm.polygon(sole_poly, fill=255)
    if params.get("toe_bumper"):
        sm.polygon(f.px([(-0.03, float(bottom(0.0))), (0.14, float(bottom(0.14))), (0.14, float(top(0.14)) + 0.025),
                         (0.0, float(top(0.0)) + 0.035)]), fill=255)
    canvas.paste(sole_layer, (0, 0), smask)
    md.bitmap((0, 0), smask, fill=255)
    d.line(sole_poly + sole_poly[:1], fill=edge, width=lw, joint="curve")
    if style == "lug":  # teeth below the sole's base line
        n = params.get("lug_count", 12)
        for i in range(n):
            x = 0.03 + 0.94 * (i + 0.5) / n
            wdt = 0.5 * 0.94 / n
            b = float(bottom(x))
            tooth = f.px([(x - wdt / 2, b + 0.002), (x + wdt / 2, b + 0.002), (x + wdt * 0.35, b - LUG_H),
                          (x - wdt * 0.35, b - LUG_H)])
            d.polygon(tooth, fill=col("outsole"), outline=edge)
            md.polygon(tooth, fill=255)



def render_sneaker(seed: int, resolution: int, aspect: tuple[int, int] = (1, 1),
                   family: str | None = None) -> tuple[Image.Image, dict]:
    """Render the sneaker of `seed` (longer side `resolution` px): (RGB image, its parameters). Pure, deterministic."""
    params = sample_params(seed, family=family)
    return render_params(params, resolution, aspect), params


# ----------------------------------------------------------------------------------------------------------------
# Dataset


def image_seed(seed: int, index: int) -> int:
    """Seed of image `index` in a dataset made with `seed` (independent streams, no overlap between datasets)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0])


def dataset_path(index: int) -> str:
    """Path of image `index` inside a dataset, as StyleGAN2-ADA's dataset tool names it."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def iter_synth(count: int, resolution: int, seed: int = 0,
               aspect: tuple[int, int] = (1, 1)) -> Iterator[tuple[str, Image.Image, dict]]:
    """Yield (archive path, image, params) for each image of a synthetic dataset."""
    for i in range(count):
        img, params = render_sneaker(image_seed(seed, i), resolution, aspect)
        yield dataset_path(i), img, params


def write_synth_dataset(
    out: Path,
    count: int,
    resolution: int,
    seed: int = 0,
    zip: bool | None = None,  # noqa: A002 - the name the CLI and the docs use
    labels: bool = False,
    progress: Callable[[int], None] | None = None,
    aspect: tuple[int, int] = (1, 1),
) -> Path:
    """Write `count` synthetic sneakers to `out`: a zip (`zip=True`, or None and out ends in .zip) or a folder.

    `resolution` is the longer side; `aspect` (width, height) makes landscape (4, 3) or portrait canvases.
    Layout: `00000/img00000000.png` ..., `dataset.json` ({"labels": [[path, class]]} with class 0/1/2 =
    low/mid/high top when `labels`, else {"labels": null}) and `params.json` ({path: rendering parameters}).
    `progress(n)` is called after each image. Returns `out`.
    """
    out = Path(out)
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    canvas_size(resolution, aspect)  # a bad aspect fails before anything is written
    as_zip = out.suffix.lower() == ".zip" if zip is None else zip
    all_params: dict[str, dict] = {}
    label_rows: list[list] = []

    def meta() -> dict[str, bytes]:
        ds = {"labels": label_rows if labels else None}
        if labels:  # the reference ignores this key; `generate --class low` reads it
            ds["class_names"] = list(TOPS)
        width, height = canvas_size(resolution, aspect)
        info = {"generator": "sneakergan.prepare.synth", "seed": seed, "count": count, "resolution": resolution,
                "width": width, "height": height, "families": FAMILY_TABLE,
                "images": all_params}
        return {"dataset.json": json.dumps(ds).encode(),
                "params.json": json.dumps(info, separators=(",", ":")).encode()}

    def encode(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=6)
        return buf.getvalue()

    if as_zip:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        # PNGs are already compressed: store them; the JSON files deflate well.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for path, img, params in iter_synth(count, resolution, seed, aspect):
                zf.writestr(path, encode(img))
                all_params[path] = params
                label_rows.append([path, params["label"]])
                if progress:
                    progress(1)
            for name, data in meta().items():
                zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        tmp.replace(out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for path, img, params in iter_synth(count, resolution, seed, aspect):
            dst = out / path
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(encode(img))
            all_params[path] = params
            label_rows.append([path, params["label"]])
            if progress:
                progress(1)
        for name, data in meta().items():
            (out / name).write_bytes(data)
    return out


def contact_sheet(images: list[Image.Image], cols: int = 8) -> Image.Image:
    """Images side by side in a grid (for looking at a sample)."""
    w, h = images[0].size
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * w, rows * h), WHITE)
    for i, im in enumerate(images):
        sheet.paste(im, ((i % cols) * w, (i // cols) * h))
    return sheet
