"""CLI commands of the prepare stage (registered on the main Typer app by `register`)."""

from pathlib import Path

import typer

from sneakergan.console import console, err_console, fail
from sneakergan.errors import UserError


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("synth")(synth)
    app.command("curate")(curate)
    app.command("prepare")(prepare)


def synth(
    out: Path = typer.Option(..., "--out", help="Output folder, or a .zip file (StyleGAN2-ADA dataset layout)."),
    count: int = typer.Option(1000, "--count", min=1, help="Number of sneakers."),
    resolution: int = typer.Option(64, "--resolution", min=8, max=4096, help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed (same seed, same images)."),
    labels: bool = typer.Option(False, "--labels/--no-labels", help="Write class labels (0/1/2 = low/mid/high top)."),
    aspect: str = typer.Option("1:1", "--aspect", help="Canvas width:height, e.g. 4:3 for landscape side views "
                               "(--resolution is then the width)."),
) -> None:
    """Render procedural side-view sneakers on white (no internet needed); parameters go to params.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from sneakergan.prepare.synth import canvas_size, write_synth_dataset

    try:
        aw, ah = (int(v) for v in aspect.split(":"))
        width, height = canvas_size(resolution, (aw, ah))
    except ValueError:
        raise typer.BadParameter(f"expected WIDTH:HEIGHT with positive integers, got {aspect!r}",
                                 param_hint="--aspect") from None

    if out.exists() and out.suffix.lower() != ".zip" and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console) as bar:
        task = bar.add_task("synth", total=count, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            speed = bar.tasks[task].speed
            if speed:
                bar.update(task, rate=f"{speed:.0f} img/s")

        write_synth_dataset(out, count, resolution, seed=seed, labels=labels, progress=advance, aspect=(aw, ah))
    typer.echo(f"wrote {count} sneakers at {width}x{height} px to {out}")


def curate(
    store: Path = typer.Argument(..., help="Store folder (with manifest.sqlite)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
) -> None:
    """Serve a page on 127.0.0.1 to mark images keep / reject / favourite (saved to the manifest at once)."""
    import socket

    import uvicorn

    from sneakergan.prepare.curate import create_app

    app = create_app(store)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # uvicorn exits the process on a busy port; check first so the user gets one clear line.
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as e:
            raise UserError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({e.strerror})") from None
    typer.echo(f"curate: http://127.0.0.1:{port}/  (k keep, r reject, f favourite, u undo; Ctrl-C to stop)")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def prepare(
    store: Path = typer.Argument(..., help="Store folder (with manifest.sqlite)."),
    out: Path = typer.Option(..., "--out", help="Dataset zip to write (StyleGAN2-ADA dataset-tool layout)."),
    resolution: int = typer.Option(256, "--resolution", help="Output side in pixels (a power of two)."),
    min_side: int = typer.Option(128, "--min-side", min=1, help="Drop images whose shorter side is smaller."),
    keep_boring: bool = typer.Option(False, "--keep-boring", help="Keep images above the boringness threshold."),
    boring_threshold: float = typer.Option(0.7, "--boring-threshold", min=0.0, max=1.0,
                                           help="Boringness above this is filtered out."),
    max_per_silhouette: int = typer.Option(0, "--max-per-silhouette", min=0,
                                           help="Cap per shape group (0: no cap); the most distinct colourways stay."),
    subset: str = typer.Option("all", "--subset", help="all | favourites | keep (curated marks)."),
    labels: str = typer.Option("none", "--labels", help="none | silhouette (shape group as class) | FILE: a .csv or "
                               ".json mapping each image (original path, URL or sha256) to a class name."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Flip so every toe points left."),
    dedupe_threshold: int = typer.Option(8, "--dedupe-threshold", min=0, max=32, help="pHash bits for a near-duplicate."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes."),
) -> None:
    """Validate, dedupe, normalise, score and balance a store's images into a training zip plus a report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from sneakergan.labels import read_label_file
    from sneakergan.prepare.pipeline import LABELS, SUBSETS, PrepareConfig, run_prepare

    if resolution < 4 or resolution & (resolution - 1):
        raise UserError(f"--resolution {resolution} is not a power of two (e.g. 64, 128, 256, 512, 1024)")
    if subset not in SUBSETS:
        raise UserError(f"--subset {subset!r}: choose one of {', '.join(SUBSETS)}")
    if labels not in LABELS:
        if not Path(labels).is_file():
            raise UserError(f"--labels {labels!r}: choose {' or '.join(LABELS)}, or give a .csv/.json label file")
        read_label_file(labels)  # a broken label file fails now, not after the whole store is processed
    if not (store / "manifest.sqlite").is_file():
        raise UserError(f"{store} is not a store (no manifest.sqlite)")
    if out.suffix.lower() != ".zip":
        raise UserError(f"--out {out} must end in .zip")
    cfg = PrepareConfig(resolution=resolution, min_side=min_side, flip=flip, dedupe_threshold=dedupe_threshold,
                        max_per_silhouette=max_per_silhouette, keep_boring=keep_boring,
                        boring_threshold=boring_threshold, subset=subset, labels=labels, workers=workers)
    columns = (TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, console=err_console) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, advance: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            tid = tasks[stage]
            if total is not None:
                bar.update(tid, total=total)
            if advance:
                bar.advance(tid, advance)
                speed = bar.tasks[tid].speed
                if speed:
                    bar.update(tid, rate=f"{speed:.1f} img/s")

        result = run_prepare(store, out, cfg, progress=progress)

    table = Table(title=f"prepare: {result.kept} kept in {result.seconds:.1f} s")
    table.add_column("outcome")
    table.add_column("images", justify="right")
    for code, n in result.counts.items():
        table.add_row(code, str(n))
    for code, n in result.collect_rejections.items():
        table.add_row(f"[dim]{code} (at collect)[/dim]", f"[dim]{n}[/dim]")
    console.print(table)
    console.print(f"boringness: {result.boring_model}; silhouette groups: {result.silhouette_groups}")
    if result.class_names is not None:
        console.print(f"classes from {labels}: {', '.join(result.class_names) or 'none'}"
                      + (f"; {result.labels_unmatched} label(s) named no kept image" if result.labels_unmatched else ""))
    console.print(f"report: {result.report['json']}  contact sheets: {result.report['kept']}, "
                  f"{result.report['rejected']}")
    if result.out is None:
        fail("no images left to export (see the report for why); no zip written", code=1)
    console.print(f"wrote {result.kept} images at {resolution}px to {result.out}")
