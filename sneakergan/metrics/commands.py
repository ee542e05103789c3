"""CLI commands of the metrics stage (registered on the main Typer app by `register`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sneakergan.cli_options import model_option, resolve_model
from sneakergan.errors import UserError


def metrics(
    checkpoint: Path = model_option(),
    data: Path = typer.Option(..., "--data", help="Dataset: a StyleGAN2-ADA zip or a folder of images."),
    metric_names: str = typer.Option(
        "fid50k_full", "--metrics", help="Comma-separated: fid50k_full, kid50k_full, pr50k3_full."
    ),
    num: Optional[int] = typer.Option(None, "--num", min=2, help="Generated samples (overrides the 50k)."),
    features: Optional[Path] = typer.Option(
        None, "--features", help="Inception weights (pt_inception-2015-12-05-6726825d.pth or .safetensors)."
    ),
    extractor: str = typer.Option("inception", "--extractor", help="inception | random-tiny (not comparable)."),
    device: str = typer.Option("auto", "--device", help="cpu | cuda | auto."),
    batch: int = typer.Option(32, "--batch", min=1, help="Images per forward pass."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated latents."),
    seeds: Optional[str] = typer.Option(
        None, "--seeds", help="Repeat for these latent seeds (e.g. 0-2) and report each and their mean."
    ),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Real-feature cache (~/.cache/sneakergan)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
) -> None:
    """FID / KID / precision-recall of a model against a dataset (StyleGAN2-ADA protocol).

    Images are generated at psi 1 (no truncation), as the reference computes its published metrics; the
    other commands default to psi 0.7, which looks better but scores worse.
    """
    import dataclasses
    import json

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskProgressColumn,
                               TextColumn, TimeRemainingColumn)
    from rich.table import Table
    from rich.text import Text

    from sneakergan import cli_options
    from sneakergan.console import console as out
    from sneakergan.console import err_console as console
    from sneakergan.generate import load_generator

    from .features import EXTRACTORS, build_extractor
    from .pipeline import MetricError, parse_metric, run_metrics

    seed_list = cli_options.parse_seeds(seeds) if seeds is not None else [seed]

    names = [n.strip() for n in metric_names.split(",") if n.strip()]
    if extractor not in EXTRACTORS:
        raise UserError(f"--extractor {extractor!r}: choose from {', '.join(EXTRACTORS)}")
    if not names:
        raise UserError("--metrics: name at least one metric")
    try:
        for name in names:
            parse_metric(name, num)
    except MetricError as exc:
        raise UserError(f"--metrics: {exc}") from None
    dev = str(cli_options.device(device))
    model = resolve_model(checkpoint)

    # The weights check comes first: it is the likeliest failure and needs no model or data.
    try:
        feat = build_extractor(extractor, weights=features, device=dev)
    except UserError:
        raise  # MissingWeightsError: says where it looked and how to get the file
    except ValueError as exc:  # a file that is not the Inception state dict
        raise UserError(str(exc)) from None
    G = load_generator(model, device=dev)

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.1f} img/s" if task.speed else "? img/s")

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               RateColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = "real features" if stage == "real" else "generated features"
                tasks[stage] = bar.add_task(label, total=total)
            bar.update(tasks[stage], completed=done)

        reports = [run_metrics(G, data, names, num=num, extractor=feat, device=dev, cache_dir=cache_dir,
                               batch_size=batch, seed=s, progress=on_progress) for s in seed_list]

    from .diversity import FIGURES, diversity_rows_over_seeds, mean_over_seeds

    per_seed = [r.results for r in reports]
    report = dataclasses.replace(reports[0], results=mean_over_seeds(per_seed),
                                 seconds=sum(r.seconds for r in reports))
    div_rows = diversity_rows_over_seeds(seed_list, per_seed)
    shown = {k for k in report.results if k.startswith("div")} if div_rows else set()
    table = Table(title=f"{checkpoint.name} vs {data.name}")
    table.add_column("metric")
    table.add_column("value" if len(seed_list) == 1 else f"mean of {len(seed_list)} seeds", justify="right")
    if len(seed_list) > 1:
        table.add_column("min - max", justify="right")
    for key, value in report.results.items():
        if key not in shown:
            spread = [f"{min(r[key] for r in per_seed):.6g} - {max(r[key] for r in per_seed):.6g}"]
            table.add_row(key, f"{value:.6g}", *(spread if len(seed_list) > 1 else []))
    if table.row_count:
        out.print(table)
    if div_rows:
        # Diversity is read against the ceiling: each generated row sits over a second data sample's figures.
        div = Table(title=f"diversity of {checkpoint.name} vs {data.name} (ceiling: a 2nd sample of the data)")
        div.add_column("space")
        div.add_column("set")
        for name in (*FIGURES, "mask_iou"):
            div.add_column(name.replace("_", " "), justify="right")
        for space, label, row in div_rows:
            div.add_row(space, label, *(f"{row[n]:.3f}" if n in row else "-" for n in (*FIGURES, "mask_iou")))
        out.print(div)
    out.print(
        f"{report.num_gen} generated (psi=1, seed {', '.join(map(str, seed_list))}) vs {report.num_real} real "
        f"images; extractor {report.extractor}; real features {'from cache' if report.real_cached else 'computed'}; "
        f"{report.seconds:.1f} s on {dev}"
    )
    if not report.comparable:
        out.print("[yellow]note:[/yellow] random-tiny features: these numbers are NOT comparable to published FIDs.")
    if json_out is not None:
        payload = report.to_dict() | {"checkpoint": str(checkpoint), "seed": seed_list[0], "device": dev}
        if len(seed_list) > 1:  # results above are the means
            payload |= {"seeds": seed_list, "per_seed": per_seed}
        json_out.write_text(json.dumps(payload, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("metrics")(metrics)
