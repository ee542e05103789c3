"""CLI commands of the model stage: presets, generate, import, export."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_options import MODEL, PSI, model_option, resolve_model
from .console import console, progress_bar
from .errors import UserError


def register(app: typer.Typer) -> None:
    """Add the model commands to the main app."""
    app.command("presets")(presets)
    app.command("generate")(generate)
    app.command("import")(import_pickle)
    app.command("export")(export)


def presets() -> None:
    """List the network presets with their parameter counts."""
    from rich.table import Table

    from .nets import PRESETS, Discriminator, Generator, count_parameters

    table = Table(title="sneakergan presets")
    for col in ("preset", "output", "z/w", "mapping", "channels", "G params", "D params"):
        table.add_column(col, justify="right" if "params" in col else "left", no_wrap=True)
    for name, p in PRESETS.items():
        cfg = p.network
        table.add_row(name, f"{cfg.img_width}x{cfg.img_height}", f"{cfg.z_dim}/{cfg.w_dim}", str(cfg.mapping_layers),
                      f"{cfg.channel_base}/{cfg.channel_max}", f"{count_parameters(Generator(cfg)):,}",
                      f"{count_parameters(Discriminator(cfg)):,}")
    console.print(table)
    for name, p in PRESETS.items():
        console.print(f"[bold]{name}[/]: {p.about}")


def generate(
    model: Path = MODEL,
    seeds: str = typer.Option("0-7", help="Seeds, e.g. 0-99,120."),
    psi: float = PSI,
    cutoff: Optional[int] = typer.Option(None, min=1, help="Truncate only the first N ws."),
    noise_mode: str = typer.Option("const", help="random | const | none."),
    class_name: Optional[str] = typer.Option(None, "--class", help="Class of a conditional model: its name (from "
                                             "`prepare --labels`) or index."),
    out: Path = typer.Option(Path("out"), help="Output folder."),
    grid: bool = typer.Option(False, "--grid", help="Also write a contact sheet grid.png."),
    batch: int = typer.Option(0, min=0, help="Batch size (0 = automatic)."),
    device: str = typer.Option("auto", help="cpu | cuda | auto."),
    precision: str = typer.Option("fp32", help="fp32 (default: PNGs match the reference's to 1 level) | auto (bf16 on CPUs with native bf16 and CUDA that supports it: ~2x faster, 0.3 levels off on average) | bf16 | fp16 (CUDA)."),
) -> None:
    """Write one PNG per seed (seed s means z = RandomState(s).randn(1, z_dim), as the reference tools)."""
    from PIL import Image

    from . import cli_options
    from .generate import generate_images, load_generator
    from .labels import class_index, model_class_names
    from .modelfile import read_meta
    from .precision import resolve_precision
    from .nets import NOISE_MODES

    if noise_mode not in NOISE_MODES:
        raise UserError(f"--noise-mode must be one of {', '.join(NOISE_MODES)}")
    seed_list = cli_options.parse_seeds(seeds)
    path = resolve_model(model)
    dev = cli_options.device(device)
    try:
        prec = resolve_precision(precision, dev)
    except ValueError as e:
        raise UserError(str(e)) from None
    meta = read_meta(path)
    G = load_generator(path, dev)
    class_idx = None if class_name is None else class_index(class_name, model_class_names(meta), G.c_dim)
    if G.c_dim and class_idx is None:
        raise UserError(f"{model} is conditional ({G.c_dim} classes): choose one with --class")
    if batch <= 0:  # big batches help GPUs; on CPU 8 already keeps both cores busy
        batch = 32 if dev.type == "cuda" else 8
    out.mkdir(parents=True, exist_ok=True)
    images = []
    with progress_bar("generating", total=len(seed_list), unit="img") as advance:
        for seed, arr in generate_images(G, seed_list, psi=psi, noise_mode=noise_mode, class_idx=class_idx,
                                         batch_size=batch, cutoff=cutoff, on_batch=advance, precision=prec):
            Image.fromarray(arr).save(out / f"seed{seed:04d}.png")
            if grid:
                images.append(arr)
    if grid:
        from .generate import make_grid

        make_grid(images).save(out / "grid.png")
    console.print(f"wrote {len(seed_list)} images to {out}" + (" (+ grid.png)" if grid else ""))


def import_pickle(
    pkl: Path = typer.Argument(..., help="A StyleGAN2-ADA network-snapshot-*.pkl."),
    out: Path = typer.Option(..., "--out", help="Model file to write (NAME.safetensors + NAME.json)."),
    nets: str = typer.Option("G_ema", help="Networks to import: G_ema or G,D,G_ema."),
    force: bool = typer.Option(False, "--force", help="Replace an existing model file at --out."),
) -> None:
    """Import a reference snapshot safely (a restricted unpickler: nothing in the file is executed)."""
    from .interop.nvlabs import import_snapshot
    from .modelfile import refuse_overwrite

    refuse_overwrite(out, force)
    path = import_snapshot(pkl, out, [n.strip() for n in nets.split(",") if n.strip()])
    console.print(f"imported {pkl} -> {path}")


def export(
    model: Path = model_option(help="Training checkpoint or run folder (its latest checkpoint) to export."),
    out: Path = typer.Option(..., "--out", help="Serving model file to write (NAME.safetensors + NAME.json)."),
    fp16: bool = typer.Option(False, help="Store weights as float16 (half the size)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing model file at --out."),
) -> None:
    """Strip a checkpoint to G_ema for serving (refuses to replace an existing model unless --force)."""
    from .modelfile import export_model

    path = export_model(resolve_model(model), out, fp16=fp16, overwrite=force)
    console.print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")
