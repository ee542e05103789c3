"""`sneakergan plot RUN`: training curves from RUN/log.jsonl drawn to a PNG with matplotlib.

Panels: losses, regularisers, D outputs, augmentation (p on its own axis, r_t with its target line), speed, and
the logged metrics, generically: one panel for quality (FID, KID, ...), one for diversity (keys containing
precision / recall / density / coverage / iou; `*_ceiling` keys, the real data against itself, dashed).
Every panel marks the points where the run was resumed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .rundir import LATEST, read_log

PANELS: list[tuple[str, list[str]]] = [
    ("losses", ["loss_G", "loss_D"]),
    ("regularisers", ["loss_r1", "loss_pl", "pl_mean"]),
    ("discriminator outputs", ["D_real", "D_fake", "D_fake_G"]),
    ("speed (s/kimg)", ["sec_per_kimg"]),
]
DIVERSITY_WORDS = ("precision", "recall", "density", "coverage", "iou")
DEFAULT_TARGET = 0.6


def is_diversity(key: str) -> bool:
    return any(w in key.lower() for w in DIVERSITY_WORDS)


def _series(rows: list[dict], key: str, metric: bool = False) -> tuple[list[float], list[float]]:
    pts = [(r["kimg"], (r.get("metrics") or {}).get(key) if metric else r.get(key)) for r in rows if "kimg" in r]
    pts = [(x, y) for x, y in pts if isinstance(y, (int, float)) and not isinstance(y, bool)]
    return [x for x, _ in pts], [y for _, y in pts]


def run_target(run_dir: Path) -> float:
    """The run's ADA target from its latest checkpoint's JSON (no weights read), else the default 0.6."""
    try:
        meta = json.loads((run_dir / f"{LATEST}.json").read_text())
        return float(meta["state"]["train_config"]["target"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_TARGET


def build_figure(rows: list[dict[str, Any]], title: str = "", target: float = DEFAULT_TARGET):
    """The matplotlib Figure of a run's log rows (tests inspect it; plot_run saves it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric_keys = sorted({k for r in rows for k in (r.get("metrics") or {})})
    quality = [k for k in metric_keys if not is_diversity(k)]
    diversity = [k for k in metric_keys if is_diversity(k)]
    panels: list[tuple[str, list[str], str]] = []
    for name, keys in PANELS[:3]:
        present = [k for k in keys if _series(rows, k)[0]]
        if present:
            panels.append((name, present, "log"))
    if _series(rows, "p")[0] or _series(rows, "r_t")[0]:
        panels.append(("augmentation", ["p", "r_t"], "aug"))
    if _series(rows, "sec_per_kimg")[0]:
        panels.append((PANELS[3][0], PANELS[3][1], "log"))
    if quality:
        panels.append(("quality", quality, "metric"))
    if diversity:
        # The headline figures only (recall, coverage, outline IoU, each beside its ceiling): all of a divNk
        # table's 20-odd series in one panel hide each other and the legend covers the axes. The log has the rest.
        headline = [k for k in diversity if k.removesuffix("_ceiling").endswith(("_recall", "_coverage", "mask_iou"))]
        panels.append(("diversity (dashed: the data's ceiling)", headline or diversity, "metric"))
    resumes = [r["resumed_at_kimg"] for r in rows if isinstance(r.get("resumed_at_kimg"), (int, float))]

    cols = 2
    nrows = max((len(panels) + cols - 1) // cols, 1)
    fig, axes = plt.subplots(nrows, cols, figsize=(11, 3.2 * nrows), squeeze=False)
    for ax, (name, keys, kind) in zip(axes.flat, panels):
        if kind == "aug":
            _augmentation_panel(ax, rows, target)
        else:
            colours: dict[str, str] = {}
            for key in keys:
                xs, ys = _series(rows, key, metric=kind == "metric")
                if not xs:
                    continue
                base = key.removesuffix("_ceiling")
                colour = colours.setdefault(base, f"C{len(colours) % 10}")  # a figure and its ceiling share a colour
                ceiling = key.endswith("_ceiling")
                ax.plot(xs, ys, "--" if ceiling else "-", color=colour, label=None if ceiling else key,
                        marker="." if len(xs) < 30 else None)
            if kind == "metric" and name == "quality":
                values = [y for k in keys for y in _series(rows, k, metric=True)[1]]
                if values and min(values) > 0 and max(values) / min(values) > 100:
                    ax.set_yscale("log")  # FID and KID differ by orders of magnitude
            ax.legend(fontsize=7 if len(keys) > 6 else 8)
        for x in resumes:
            ax.axvline(x, color="grey", linestyle=":", linewidth=1, label="_resume")
        ax.set_title(name + (" (dotted: resumed)" if resumes and name == panels[0][0] else ""))
        ax.set_xlabel("kimg")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"training curves: {title}" if title else "training curves")
    fig.tight_layout()
    return fig


def _augmentation_panel(ax, rows: list[dict], target: float) -> None:
    """p on the left axis; r_t and its target on a right axis of their own (different ranges)."""
    xs, ys = _series(rows, "p")
    lines = []
    marker = "." if len(xs) < 30 else None
    if xs:
        lines += ax.plot(xs, ys, color="tab:blue", label="p", marker=marker)
    ax.set_ylabel("p")
    xr, yr = _series(rows, "r_t")
    if xr:
        rt_ax = ax.twinx()
        lines += rt_ax.plot(xr, yr, color="tab:orange", label="r_t", marker=marker)
        lines.append(rt_ax.axhline(target, color="tab:orange", linestyle="--", linewidth=1,
                                   label=f"r_t target {target:g}"))
        rt_ax.set_ylabel("r_t")
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8)


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw every curve the log holds and return the PNG path."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rows = read_log(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}: no training log ({run_dir / 'log.jsonl'} is missing or empty)")
    fig = build_figure(rows, run_dir.name, run_target(run_dir))
    out_path = Path(out) if out else run_dir / "curves.png"
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
