"""`sneakergan plot RUN`: training curves from RUN/log.jsonl drawn to a PNG with matplotlib."""

from __future__ import annotations

from pathlib import Path

from .loop import read_log

# Panels: title -> the log keys drawn in it (only those present are drawn).
PANELS: list[tuple[str, list[str]]] = [
    ("losses", ["loss_G", "loss_D"]),
    ("regularisers", ["loss_r1", "loss_pl", "pl_mean"]),
    ("discriminator outputs", ["D_real", "D_fake", "D_fake_G"]),
    ("augmentation", ["p", "r_t", "sign_real"]),
    ("speed (s/kimg)", ["sec_per_kimg"]),
]


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw every curve the log holds (plus a panel per metric) and return the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rows = read_log(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}: no training log ({run_dir / 'log.jsonl'} is missing or empty)")
    metric_names = sorted({k for r in rows for k in (r.get("metrics") or {})})
    panels = [(t, [k for k in keys if any(k in r for r in rows)]) for t, keys in PANELS]
    panels = [(t, keys) for t, keys in panels if keys] + [(m, [m]) for m in metric_names]
    cols = 2
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(11, 3.2 * nrows), squeeze=False)
    for ax, (title, keys) in zip(axes.flat, panels):
        for key in keys:
            pts = [(r["kimg"], (r.get("metrics") or {}).get(key, r.get(key))) for r in rows]
            pts = [(x, y) for x, y in pts if isinstance(y, (int, float))]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=key, marker="." if len(pts) < 30 else None)
        ax.set_title(title)
        ax.set_xlabel("kimg")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"training curves: {run_dir.name}")
    fig.tight_layout()
    out_path = Path(out) if out else run_dir / "curves.png"
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
