"""Procedural side-view sneakers on white: a training set that needs no internet.

Each sneaker is drawn from a seed: a numpy Generator picks proportions (sole thickness, toe box, low/mid/high top),
a colourway (white with an accent, black, monochrome, bold, earth tones), a pattern and a side logo. Shapes are
smooth closed curves (Catmull-Rom through a few key points) drawn with Pillow polygons at 4x the target
resolution and downsampled with LANCZOS, which gives anti-aliased edges without a rasteriser of our own.

The shoe is seen from the side with the toe pointing LEFT, centred on a pure white square, about 80% of the width,
so the images look like the normalised webshop photos that `sneakergan prepare` produces.

    img, params = render_sneaker(seed=7, resolution=64)
    write_synth_dataset(Path("synth.zip"), count=1000, resolution=64, seed=0)

The dataset layout is the one StyleGAN2-ADA's dataset tool writes (`00000/img00000000.png`, `dataset.json`), plus
`params.json` with every image's rendering parameters.
"""

from __future__ import annotations

import colorsys
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 4
TOPS = ("low", "mid", "high")  # class ids 0, 1, 2 when labels are written
SCHEMES = ("white", "black", "mono", "bold", "earth")
PATTERNS = ("none", "stripes", "dots", "blocks", "checker")
LOGOS = ("swoosh", "bars", "band", "badge", "none")
WHITE = (255, 255, 255)

Point = tuple[float, float]


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

    def __init__(self, size: int, length_px: float, x0: float, ground: float):
        self.size, self.length_px, self.x0, self.ground = size, length_px, x0, ground

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


def _palette(rng: np.random.Generator, scheme: str) -> dict[str, tuple[int, int, int]]:
    """Colour roles of one colourway. Harmonious by construction: hues come from one base hue and fixed offsets."""
    h = rng.random()
    bold = lambda hue, l=0.5: _rgb(hue, l + rng.uniform(-0.08, 0.08), rng.uniform(0.65, 0.95))  # noqa: E731
    offwhite = _rgb(rng.uniform(0.08, 0.15), rng.uniform(0.93, 0.98), rng.uniform(0.0, 0.4))
    black = _rgb(h, rng.uniform(0.08, 0.18), rng.uniform(0.0, 0.15))
    dark_sole = _rgb(h, rng.uniform(0.12, 0.3), rng.uniform(0.0, 0.1))
    gum = _rgb(rng.uniform(0.07, 0.1), rng.uniform(0.4, 0.55), rng.uniform(0.45, 0.7))

    if scheme == "white":
        accent = bold(h)
        accent2 = bold(h + rng.choice([0.0, 0.5, 0.33]), 0.45)
        p = dict(base=offwhite, toe=offwhite if rng.random() < 0.6 else accent2, heel=accent, logo=accent,
                 eyestay=offwhite if rng.random() < 0.5 else accent, collar=accent2, tongue=offwhite,
                 laces=offwhite, midsole=WHITE, outsole=rng.choice([dark_sole, gum, accent], p=[0.5, 0.3, 0.2]),
                 pattern=accent2)
    elif scheme == "black":
        accent = bold(h) if rng.random() < 0.6 else (235, 235, 235)
        p = dict(base=black, toe=black, heel=_mix(black, accent, 0.15), logo=accent, eyestay=black,
                 collar=_mix(black, WHITE, 0.2), tongue=black, laces=black if rng.random() < 0.5 else WHITE,
                 midsole=WHITE if rng.random() < 0.6 else _mix(black, WHITE, 0.1), outsole=(25, 25, 25),
                 pattern=_mix(black, accent, 0.5))
    elif scheme == "mono":
        s = rng.uniform(0.35, 0.9)
        l0 = rng.uniform(0.3, 0.6)
        tone = lambda dl: _rgb(h, l0 + dl, s)  # noqa: E731
        p = dict(base=tone(0), toe=tone(-0.12), heel=tone(-0.12), logo=tone(0.3), eyestay=tone(-0.08),
                 collar=tone(-0.18), tongue=tone(0.05), laces=tone(0.35) if rng.random() < 0.5 else WHITE,
                 midsole=WHITE if rng.random() < 0.6 else tone(0.38), outsole=tone(-0.25),
                 pattern=tone(0.15))
    elif scheme == "bold":
        offs = {"complement": [0.5, 0.0], "triad": [1 / 3, 2 / 3], "analogous": [0.08, -0.08]}
        o = offs[rng.choice(list(offs))]
        c0, c1, c2 = bold(h), bold(h + o[0]), bold(h + o[1], 0.4)
        p = dict(base=c0, toe=c1, heel=c1, logo=WHITE if rng.random() < 0.5 else c2, eyestay=c2, collar=c2,
                 tongue=c1, laces=WHITE if rng.random() < 0.6 else c2,
                 midsole=WHITE if rng.random() < 0.7 else c1, outsole=rng.choice([dark_sole, c2], p=[0.6, 0.4]),
                 pattern=c1)
    else:  # earth
        tan = _rgb(rng.uniform(0.06, 0.12), rng.uniform(0.45, 0.7), rng.uniform(0.3, 0.6))
        olive = _rgb(rng.uniform(0.14, 0.25), rng.uniform(0.25, 0.4), rng.uniform(0.2, 0.4))
        brown = _rgb(rng.uniform(0.04, 0.08), rng.uniform(0.2, 0.3), rng.uniform(0.3, 0.5))
        base, second = [tan, olive, brown][rng.integers(3)], [brown, offwhite, olive][rng.integers(3)]
        p = dict(base=base, toe=second, heel=second, logo=offwhite, eyestay=second, collar=brown,
                 tongue=base, laces=offwhite, midsole=offwhite, outsole=gum if rng.random() < 0.7 else brown,
                 pattern=second)
    p = {k: tuple(int(x) for x in v) for k, v in p.items()}
    # Outline: a darker version of the upper, never lighter than mid grey, so white shoes stand off white.
    p["outline"] = _mix(_mix(p["base"], (0, 0, 0), 0.55), (90, 90, 90), 0.4)
    return p


# ----------------------------------------------------------------------------------------------------------------
# Parameters


def sample_params(seed: int) -> dict:
    """All choices for one sneaker, drawn from `seed` (JSON-serialisable; `render_params` draws them)."""
    rng = np.random.default_rng(seed)
    top = str(rng.choice(TOPS, p=[0.55, 0.2, 0.25]))
    scheme = str(rng.choice(SCHEMES, p=[0.3, 0.15, 0.2, 0.2, 0.15]))
    pattern = str(rng.choice(PATTERNS, p=[0.55, 0.15, 0.1, 0.12, 0.08]))
    logo = str(rng.choice(LOGOS, p=[0.35, 0.2, 0.15, 0.15, 0.15]))
    collar_h = {"low": rng.uniform(0.35, 0.41), "mid": rng.uniform(0.44, 0.5), "high": rng.uniform(0.54, 0.62)}[top]
    colors = _palette(rng, scheme)
    return {
        "seed": int(seed),
        "top": top,
        "label": TOPS.index(top),
        "scheme": scheme,
        "pattern": pattern,
        "pattern_scale": float(rng.uniform(0.03, 0.07)),
        "pattern_angle": float(rng.choice([0.0, 0.0, 30.0, -30.0, 90.0])),
        "logo": logo,
        "toe_cap": bool(rng.random() < 0.6),
        "heel_counter": bool(rng.random() < 0.7),
        "eyestay": bool(rng.random() < 0.7),
        "pull_tab": bool(rng.random() < 0.4),
        "air_window": bool(rng.random() < 0.25),
        "midsole_stripe": bool(rng.random() < 0.25),
        "width_frac": float(rng.uniform(0.76, 0.84)),
        "outsole_h": float(rng.uniform(0.022, 0.04)),
        "midsole_h": float(rng.uniform(0.04, 0.1)),
        "toe_spring": float(rng.uniform(0.01, 0.035)),
        "toe_h": float(rng.uniform(0.1, 0.14)),
        "throat_x": float(rng.uniform(0.3, 0.38)),
        "collar_x": float(rng.uniform(0.58, 0.65)),
        "collar_h": float(collar_h),
        "collar_dip": float(rng.uniform(0.02, 0.06)) if top == "low" else float(rng.uniform(-0.01, 0.03)),
        "lace_count": int(rng.integers(4, 8)) + (3 if top == "high" else 0),
        "colors": {k: _hex(v) for k, v in colors.items()},
    }


def _color(params: dict, role: str) -> tuple[int, int, int]:
    h = params["colors"][role].lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


# ----------------------------------------------------------------------------------------------------------------
# Drawing


def _sole_curves(p: dict) -> tuple[Callable, Callable]:
    """bottom(x) and top(x) of the sole in shoe units: toe spring at the front, a slightly thicker heel."""
    ts, to, tm = p["toe_spring"], p["outsole_h"], p["midsole_h"]

    def bottom(x):
        x = np.asarray(x, dtype=np.float64)
        return ts * np.clip((0.28 - x) / 0.28, 0, None) ** 2

    def top(x):
        x = np.asarray(x, dtype=np.float64)
        return bottom(x) + to + tm * (0.85 + 0.3 * np.clip(x, 0, 1))

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
        poly = f.px(np.concatenate([upper, lower[::-1]]))
        d.polygon(poly, fill=color, outline=edge, width=f.w(0.004))
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


def render_params(params: dict, resolution: int) -> Image.Image:
    """Draw the sneaker described by `params` (from `sample_params`) as an RGB image of resolution x resolution."""
    if resolution < 8:
        raise ValueError(f"resolution must be at least 8, got {resolution}")
    S = resolution * SUPERSAMPLE
    bottom, top = _sole_curves(params)
    outline_pts, throat, collar = _upper_outline(params, top)
    max_y = params["collar_h"] + 0.06  # tongue and pull tab stick out above the collar
    length_px = params["width_frac"] * S
    f = _Frame(S, length_px, x0=(S - length_px) / 2, ground=S / 2 + max_y * length_px / 2)
    col = lambda role: _color(params, role)  # noqa: E731
    edge = col("outline")
    lw = f.w(0.006)

    canvas = Image.new("RGB", (S, S), WHITE)
    d = ImageDraw.Draw(canvas)

    # Behind the upper: the tongue at the front of the collar, a pull tab at the heel.
    cx, ch = throat[1]
    tongue = _catmull_rom([(cx - 0.08, ch - 0.07), (cx - 0.025, ch + 0.03), (cx + 0.03, ch + 0.045),
                           (cx + 0.08, ch + 0.0), (cx + 0.06, ch - 0.1)], samples=6)
    d.polygon(f.px(tongue), fill=col("tongue"), outline=edge, width=lw)
    if params["pull_tab"]:
        hx, hy = 0.93, ch + 0.005
        d.rounded_rectangle(f.px([(hx - 0.025, hy + 0.05), (hx + 0.025, hy - 0.04)]), radius=f.w(0.012),
                            fill=col("collar"), outline=edge, width=lw)

    # The upper: a layer with base colour, pattern and panels, clipped by the upper's silhouette.
    upper_poly = f.px(_catmull_rom(outline_pts, samples=8))
    layer = Image.new("RGB", (S, S), col("base"))
    ld = ImageDraw.Draw(layer)
    _draw_pattern(ld, f, params, col("pattern"))
    s_toe, s_mid, s_heel = float(top(0.02)), float(top(0.5)), float(top(0.97))
    if params["toe_cap"]:
        r = (0.17, params["toe_h"] + 0.03)
        ld.ellipse(f.px([(0.04 - r[0], s_toe + r[1]), (0.04 + r[0], s_toe - r[1])]),
                   fill=col("toe"), outline=edge, width=lw)
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
    ld.line(f.px(_catmull_rom(collar, samples=6, closed=False)), fill=col("collar"), width=f.w(0.045),
            joint="curve")
    mask = Image.new("L", (S, S), 0)
    ImageDraw.Draw(mask).polygon(upper_poly, fill=255)
    canvas.paste(layer, (0, 0), mask)
    d.line(upper_poly + upper_poly[:1], fill=edge, width=lw, joint="curve")

    # Laces across the lacing line, eyelets just below it.
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

    # The sole: midsole layer with the outsole band at the bottom, clipped by the sole's silhouette.
    xs = np.linspace(0.0, 1.0, 40)
    x_front, x_back = -0.025, 1.02
    bot, tp = bottom(xs), top(xs)
    sole_pts = (
        [(x_front, float(bottom(0.0)) + 0.3 * (float(top(0.0)) - float(bottom(0.0))))]
        + list(zip(xs.tolist(), bot.tolist()))
        + [(x_back, 0.5 * float(top(1.0)))]
        + list(zip(xs[::-1].tolist(), tp[::-1].tolist()))
    )
    sole_poly = f.px(sole_pts)
    sole_layer = Image.new("RGB", (S, S), col("midsole"))
    sd = ImageDraw.Draw(sole_layer)
    xs_wide = np.linspace(-0.1, 1.1, 40)
    band_top = bottom(xs_wide) + params["outsole_h"]
    sd.polygon(f.px(list(zip(xs_wide.tolist(), band_top.tolist())) + [(1.1, -0.2), (-0.1, -0.2)]),
               fill=col("outsole"))
    if params["midsole_stripe"]:
        mid = bottom(xs_wide) + params["outsole_h"] + 0.45 * params["midsole_h"]
        sd.line(f.px(list(zip(xs_wide.tolist(), mid.tolist()))), fill=col("logo"), width=f.w(0.012))
    if params["air_window"]:
        y0 = float(bottom(0.8)) + params["outsole_h"] + 0.012
        y1 = float(top(0.8)) - 0.012
        if y1 - y0 > 0.02:
            sd.rounded_rectangle(f.px([(0.74, y1), (0.9, y0)]), radius=f.w(0.01), fill=(170, 200, 220),
                                 outline=edge, width=f.w(0.004))
    smask = Image.new("L", (S, S), 0)
    ImageDraw.Draw(smask).polygon(sole_poly, fill=255)
    canvas.paste(sole_layer, (0, 0), smask)
    d.line(sole_poly + sole_poly[:1], fill=edge, width=lw, joint="curve")

    return canvas.resize((resolution, resolution), Image.LANCZOS)


def render_sneaker(seed: int, resolution: int) -> tuple[Image.Image, dict]:
    """Render the sneaker of `seed` at `resolution` px: (RGB image, its parameters). Pure and deterministic."""
    params = sample_params(seed)
    return render_params(params, resolution), params


# ----------------------------------------------------------------------------------------------------------------
# Dataset


def image_seed(seed: int, index: int) -> int:
    """Seed of image `index` in a dataset made with `seed` (independent streams, no overlap between datasets)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0])


def dataset_path(index: int) -> str:
    """Path of image `index` inside a dataset, as StyleGAN2-ADA's dataset tool names it."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def iter_synth(count: int, resolution: int, seed: int = 0) -> Iterator[tuple[str, Image.Image, dict]]:
    """Yield (archive path, image, params) for each image of a synthetic dataset."""
    for i in range(count):
        img, params = render_sneaker(image_seed(seed, i), resolution)
        yield dataset_path(i), img, params


def write_synth_dataset(
    out: Path,
    count: int,
    resolution: int,
    seed: int = 0,
    zip: bool | None = None,  # noqa: A002 - the name the CLI and the docs use
    labels: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write `count` synthetic sneakers to `out`: a zip (`zip=True`, or None and out ends in .zip) or a folder.

    Layout: `00000/img00000000.png` ..., `dataset.json` ({"labels": [[path, class]]} with class 0/1/2 =
    low/mid/high top when `labels`, else {"labels": null}) and `params.json` ({path: rendering parameters}).
    `progress(n)` is called after each image. Returns `out`.
    """
    out = Path(out)
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    as_zip = out.suffix.lower() == ".zip" if zip is None else zip
    all_params: dict[str, dict] = {}
    label_rows: list[list] = []

    def meta() -> dict[str, bytes]:
        ds = {"labels": label_rows if labels else None}
        info = {"generator": "sneakergan.prepare.synth", "seed": seed, "count": count, "resolution": resolution,
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
            for path, img, params in iter_synth(count, resolution, seed):
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
        for path, img, params in iter_synth(count, resolution, seed):
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
