"""CLI commands of the edit stage: directions (sub-app), mix, interpolate, walk, project, render."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..cli_options import MODEL, PSI, resolve_model
from ..console import console, progress_bar
from ..errors import UserError

directions_app = typer.Typer(help="Latent directions (SeFa, GANSpace): compute, name, order, hide, preview.",
                             no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.add_typer(directions_app, name="directions")
    app.command("mix")(mix)
    app.command("interpolate")(interpolate)
    app.command("walk")(walk)
    app.command("project")(project_cmd)
    app.command("render")(render_cmd)


# ---- helpers ----------------------------------------------------------------------------------------------------------
# Every error below is a UserError (DirectionsError, EditStateError, ModelFileError, ...): the CLI's entry point
# prints it as one line, so commands just call and let it propagate.
def _warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def _load_G(path: Path, device: str = "cpu"):
    from ..cli_options import device as resolve_device
    from ..generate import load_generator

    return load_generator(path, resolve_device(device))


def _renderer(path: Path, device: str = "cpu", model_id: str | None = None):
    """The renderer of a model with its directions; directions computed on other weights are left out, with a
    warning (an edit naming one then fails as an unknown direction)."""
    from .directions import DirectionSet
    from .latents import latents_dir
    from .render import Renderer, model_id_for

    G = _load_G(path, device)
    return Renderer(G, DirectionSet.for_model(path, warn=_warn), model_id=model_id or model_id_for(path),
                    latents=latents_dir(path))


def _seeds(spec: str) -> list[int]:
    from ..cli_options import parse_seeds

    return parse_seeds(spec)


def _load_directions(path: Path):
    from .directions import DirectionSet, directions_path

    return DirectionSet.load(directions_path(path))


def _save_directions(path: Path, ds) -> None:
    from .directions import directions_path

    ds.save(directions_path(path))


def _num_ws(path: Path) -> int:
    from ..modelfile import read_meta
    from ..nets import NetworkConfig

    try:
        cfg = NetworkConfig.from_dict(read_meta(path)["config"])
    except (KeyError, TypeError) as e:
        raise UserError(f"{path}: bad network config ({e})") from None
    return 2 * (cfg.resolution.bit_length() - 1) - 2


def _check_video_suffix(out: Path) -> None:
    """Refuse an output format before rendering any frame."""
    from .interpolate import VIDEO_SUFFIXES

    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--out {out}: a video must end in {' or '.join(VIDEO_SUFFIXES)}")


# ---- directions ---------------------------------------------------------------------------------------------------------
@directions_app.command("compute")
def directions_compute(
    model: Path = MODEL,
    method: str = typer.Option("sefa", help="sefa | ganspace."),
    num: int = typer.Option(10, "--num", min=1, help="Directions per layer range (SeFa) or components (GANSpace)."),
    layers: str = typer.Option("all,coarse,middle,fine", help="SeFa layer ranges, comma-separated."),
    samples: int = typer.Option(10000, min=100, help="Random w samples for sigma (and for GANSpace's PCA)."),
    device: str = typer.Option("cpu", help="cpu | cuda | auto."),
) -> None:
    """Find directions and merge them into NAME.directions.json (names, order and ranges people set are kept)."""
    from .directions import METHODS, DirectionSet, compute_directions, directions_path

    if method not in METHODS:
        raise UserError(f"--method: unknown method {method!r} (use {' or '.join(METHODS)})")
    path = resolve_model(model)
    G = _load_G(path, device)
    ranges = [r.strip() for r in layers.split(",") if r.strip()]
    new = compute_directions(G, method, num, ranges, samples=samples)
    out = directions_path(path)
    ds = DirectionSet.for_model(path, warn=lambda m: _warn(m.replace("ignored", "replacing them")))
    ds.model = path.name
    ds.merge(new)
    ds.tie_to(path)
    ds.save(out)
    console.print(f"{len(new)} {method} directions -> {out} ({len(ds)} in all)")


@directions_app.command("list")
def directions_list(model: Path = MODEL,
                    all_: bool = typer.Option(True, "--all/--visible", help="Include hidden directions.")) -> None:
    """Table of the directions in editor order."""
    from rich.table import Table

    path = resolve_model(model)
    ds = _load_directions(path)
    table = Table(title=f"directions of {path.name}")
    for col in ("order", "id", "name", "method", "layers", "sigma", "score", "shown"):
        table.add_column(col, no_wrap=True)
    for d in ds:
        if d.hidden and not all_:
            continue
        table.add_row(str(d.order), d.id, d.name, d.method, d.layers, f"{d.sigma:.3f}", f"{d.score:.4g}",
                      "no" if d.hidden else "yes")
    console.print(table)


@directions_app.command("name")
def directions_name(direction: str = typer.Argument(..., help="Direction id."),
                    name: str = typer.Argument(..., help='Display name, e.g. "sole height".'),
                    model: Path = MODEL) -> None:
    """Give a direction the name the editor shows."""
    path = resolve_model(model)
    ds = _load_directions(path)
    name = name.strip()
    if not name or len(name) > 60:
        raise UserError("a name must be 1-60 characters")
    ds.get(direction).name = name
    _save_directions(path, ds)
    console.print(f"{direction} is now {name!r}")


def _set_hidden(model: Path, ids: list[str], hidden: bool) -> None:
    path = resolve_model(model)
    ds = _load_directions(path)
    for did in ids:
        ds.get(did).hidden = hidden
    _save_directions(path, ds)
    console.print(f"{'hid' if hidden else 'showing'} {len(ids)} direction(s) in the editor")


@directions_app.command("hide")
def directions_hide(ids: List[str] = typer.Argument(..., help="Direction ids."), model: Path = MODEL) -> None:
    """Hide directions from the editor (they stay in the file and old share links keep working)."""
    _set_hidden(model, ids, True)


@directions_app.command("show-in-editor")
def directions_unhide(ids: List[str] = typer.Argument(..., help="Direction ids."), model: Path = MODEL) -> None:
    """Show hidden directions in the editor again."""
    _set_hidden(model, ids, False)


@directions_app.command("order")
def directions_order(ids: List[str] = typer.Argument(..., help="Direction ids, first shown first."),
                     model: Path = MODEL) -> None:
    """Put these directions first, in this order (the rest keep their order after them)."""
    path = resolve_model(model)
    ds = _load_directions(path)
    ds.reorder(list(ids))
    _save_directions(path, ds)
    console.print("order: " + ", ".join(ds.ids()[: len(ids) + 3]) + (" ..." if len(ds) > len(ids) + 3 else ""))


@directions_app.command("range")
def directions_range(direction: str = typer.Argument(..., help="Direction id."),
                     layers: str = typer.Argument(..., help="all | coarse | middle | fine | a-b (ws indices)."),
                     model: Path = MODEL) -> None:
    """Set the layer range a direction is applied to."""
    from .directions import check_layers

    path = resolve_model(model)
    ds = _load_directions(path)
    d = ds.get(direction)
    d.layers = check_layers(layers, _num_ws(path))
    _save_directions(path, ds)
    console.print(f"{direction} now acts on {layers}")


@directions_app.command("show")
def directions_show(
    direction: str = typer.Argument(..., help="Direction id."),
    model: Path = MODEL,
    out: Path = typer.Option(Path("direction.png"), "--out", help="Contact sheet PNG."),
    seeds: str = typer.Option("0-3", help="Seeds, one per row."),
    amounts: str = typer.Option("-3,-2,-1,0,1,2,3", help="Amounts in sigma, one per column."),
    psi: float = PSI,
) -> None:
    """Contact sheet of a direction: rows are seeds, columns amounts (in sigma)."""
    from ..generate import make_grid
    from .state import EditState

    try:
        amts = [float(a) for a in amounts.split(",") if a.strip()]
    except ValueError:
        raise UserError(f"--amounts {amounts!r}: use numbers like -3,0,3") from None
    if not amts:
        raise UserError("--amounts: give at least one amount")
    seed_list = _seeds(seeds)
    path = resolve_model(model)
    _load_directions(path).get(direction)  # a stale or missing file, or an unknown id, fails before rendering
    r = _renderer(path)
    states = [EditState(model=r.model_id, seed=s, psi=psi, edits=((direction, a),)) for s in seed_list for a in amts]
    images = []
    with progress_bar("rendering", total=len(states), unit="img") as advance:
        for i in range(0, len(states), len(amts)):
            images += r.render_batch(states[i: i + len(amts)])
            advance(len(amts))
    out.parent.mkdir(parents=True, exist_ok=True)
    make_grid(images, cols=len(amts)).save(out)
    console.print(f"wrote {out} ({len(seed_list)} seeds x amounts {amounts})")


# ---- mixing, rendering ------------------------------------------------------------------------------------------------
def mix(
    model: Path = MODEL,
    rows: str = typer.Option("0-3", help="Seeds whose other styles are kept (A), one per row."),
    cols: str = typer.Option("4-7", help="Seeds the styles come from (B), one per column."),
    layers: str = typer.Option("coarse", help="Layers taken from B: coarse | middle | fine | all | a-b."),
    psi: float = PSI,
    out: Path = typer.Option(Path("mix.png"), "--out", help="Grid PNG."),
) -> None:
    """Style-mixing grid: top row B, left column A, cell = A with B's chosen layers."""
    import numpy as np

    from ..generate import make_grid
    from .state import EditState

    a_seeds, b_seeds = _seeds(rows), _seeds(cols)
    r = _renderer(resolve_model(model))
    cells = [EditState(model=r.model_id, seed=a, psi=psi, mixes=((b, layers),)) for a in a_seeds for b in b_seeds]
    for c in cells:
        r.validate(c)
    tops = r.render_batch([EditState(model=r.model_id, seed=s, psi=psi) for s in b_seeds])
    lefts = r.render_batch([EditState(model=r.model_id, seed=s, psi=psi) for s in a_seeds])
    blank = np.full_like(tops[0], 255)
    images = [blank] + list(tops)
    with progress_bar("mixing", total=len(cells), unit="img") as advance:
        for i, a in enumerate(a_seeds):
            row = r.render_batch(cells[i * len(b_seeds): (i + 1) * len(b_seeds)])
            images += [lefts[i]] + row
            advance(len(row))
    out.parent.mkdir(parents=True, exist_ok=True)
    make_grid(images, cols=len(b_seeds) + 1).save(out)
    console.print(f"wrote {out}: {len(a_seeds)} x {len(b_seeds)} mixes of {layers} styles")


def render_cmd(
    token: str = typer.Argument(..., help="Edit state token (from the editor's share link)."),
    model: Path = MODEL,
    out: Path = typer.Option(Path("render.png"), "--out", help="PNG to write."),
    size: Optional[int] = typer.Option(None, min=1, max=8192, help="Resize so the longer side is this many pixels."),
) -> None:
    """Render an edit state token to a PNG."""
    from PIL import Image

    from .render import model_id_for
    from .state import EditState

    state = EditState.decode(token)
    path = resolve_model(model)
    if state.model != model_id_for(path):
        console.print(f"[yellow]note:[/] the token names model {state.model!r}; rendering with {path}")
    r = _renderer(path, model_id=state.model)
    arr = r.render(state)
    img = Image.fromarray(arr)
    if size:
        s = size / max(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    console.print(f"wrote {out}")


# ---- interpolation ------------------------------------------------------------------------------------------------------
def _write_frames(frames, out: Path, fps: float, size: Optional[int]) -> None:
    from .interpolate import upscale, write_strip, write_video

    write_video(upscale(frames, size), out, fps)
    strip = out.with_name(out.stem + ".strip.png")
    write_strip(frames, strip)
    console.print(f"wrote {out} ({len(frames)} frames) and {strip}")


def _render_frames(r, ws, noise: str):
    import numpy as np

    frames = []
    with progress_bar("rendering", total=len(ws), unit="frame") as advance:
        for i in range(0, len(ws), 8):
            frames.append(r.render_ws(ws[i: i + 8], noise=noise))
            advance(len(frames[-1]))
    return np.concatenate(frames)


def interpolate(
    states: Optional[List[str]] = typer.Argument(None, help="Edit state tokens (or use --seeds)."),
    model: Path = MODEL,
    seeds: Optional[str] = typer.Option(None, help="Seeds to pass through, e.g. 1,5,9 (instead of tokens)."),
    psi: float = PSI,
    mode: str = typer.Option("w", help="w: lerp the ws | z: slerp the seeds' z."),
    frames: int = typer.Option(30, min=2, max=10000, help="Frames per segment."),
    loop: bool = typer.Option(False, help="Return to the first state."),
    fps: float = typer.Option(24.0, min=0.1, max=240, help="Frames per second."),
    size: Optional[int] = typer.Option(256, min=0, max=4096, help="Longer side of the video frames (0 = model size)."),
    out: Path = typer.Option(Path("interpolation.gif"), "--out", help=".gif or .mp4 (+ NAME.strip.png)."),
) -> None:
    """Interpolate between 2+ states or seeds and write a GIF/MP4 plus a frame strip."""
    from .interpolate import interpolate_ws
    from .state import EditState

    if bool(states) == bool(seeds):
        raise UserError("give either state tokens or --seeds (not both)")
    _check_video_suffix(out)
    seed_list = _seeds(seeds) if seeds else None
    decoded = [EditState.decode(t) for t in states] if states else None
    r = _renderer(resolve_model(model))
    if seed_list is not None:
        path = [EditState(model=r.model_id, seed=s, psi=psi) for s in seed_list]
    else:
        path = [st.replace(model=r.model_id) for st in decoded]
    ws = interpolate_ws(r, path, frames=frames, mode=mode, loop=loop)
    _write_frames(_render_frames(r, ws, path[0].noise), out, fps, size or None)


def walk(
    model: Path = MODEL,
    seed: Optional[int] = typer.Option(None, min=0, max=2**32 - 1, help="Seed to walk around."),
    state: Optional[str] = typer.Option(None, help="Or an edit state token (seed-based)."),
    psi: float = PSI,
    frames: int = typer.Option(60, min=2, max=10000, help="Frames in the loop."),
    radius: float = typer.Option(0.4, min=0.0, max=3.0, help="Size of the neighbourhood (in units of |z|)."),
    walk_seed: int = typer.Option(0, help="Seed of the loop's two random directions."),
    fps: float = typer.Option(24.0, min=0.1, max=240, help="Frames per second."),
    size: Optional[int] = typer.Option(256, min=0, max=4096, help="Longer side of the video frames (0 = model size)."),
    out: Path = typer.Option(Path("walk.gif"), "--out", help=".gif or .mp4 (+ NAME.strip.png)."),
) -> None:
    """A seamless looping video of a seed's latent neighbourhood."""
    from .interpolate import walk_ws
    from .state import EditState

    if (seed is None) == (state is None):
        raise UserError("give either --seed or --state")
    _check_video_suffix(out)
    decoded = EditState.decode(state) if state is not None else None
    r = _renderer(resolve_model(model))
    st = EditState(model=r.model_id, seed=seed, psi=psi) if decoded is None else decoded.replace(model=r.model_id)
    ws = walk_ws(r, st, frames=frames, radius=radius, walk_seed=walk_seed)
    _write_frames(_render_frames(r, ws, st.noise), out, fps, size or None)


# ---- projection -----------------------------------------------------------------------------------------------------------
def project_cmd(
    photo: Path = typer.Argument(..., help="Photo of a sneaker (any size; normalised like `prepare`)."),
    model: Path = MODEL,
    steps: int = typer.Option(300, min=1, max=100000, help="Optimisation steps."),
    w_plus: bool = typer.Option(False, "--w-plus", help="Optimise one w per layer (closer fit, less editable)."),
    lpips: Optional[List[Path]] = typer.Option(None, "--lpips", help="Local VGG16/LPIPS weights (repeatable)."),
    d_loss: bool = typer.Option(True, "--d-loss/--no-d-loss", help="Discriminator-feature loss if D is in the file."),
    noise: bool = typer.Option(True, "--noise/--no-noise", help="Also optimise the noise maps."),
    out: Path = typer.Option(Path("projection"), "--out", help="Folder for target.png, projected.png, losses.json."),
    device: str = typer.Option("auto", help="cpu | cuda | auto."),
    seed: int = typer.Option(0, help="Seed of the optimisation's noise."),
    threads: int = typer.Option(0, min=0, help="torch CPU threads (0 = torch's default; 1 is fastest for small "
                                "models on a busy machine)."),
) -> None:
    """Project a photo into the model and save the latent so it can be edited like a seed."""
    import json

    import torch
    from PIL import Image
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    from ..cli_options import device as resolve_device
    from ..console import err_console
    from ..modelfile import load_checkpoint, read_meta
    from .latents import LatentStore, latents_dir
    from .project import ProjectConfig, load_perceptual, load_photo, project
    from .render import model_id_for
    from .state import EditState

    img = load_photo(photo)
    dev = resolve_device(device)
    checkpoint = resolve_model(model)
    has_d = "D" in read_meta(checkpoint).get("nets", [])
    ckpt = load_checkpoint(checkpoint, nets=("G_ema", "D") if (has_d and d_loss) else ("G_ema",), device=dev)
    perceptual = load_perceptual(lpips).to(dev) if lpips else None
    G, D = ckpt.nets["G_ema"], ckpt.nets.get("D")
    if d_loss and D is None:
        console.print("[yellow]note:[/] the model file holds no discriminator (exported?): pixel loss only")
    cfg = ProjectConfig(steps=steps, w_plus=w_plus, optimise_noise=noise, seed=seed)
    if threads:
        torch.set_num_threads(threads)
    columns = (TextColumn("[bold]projecting"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TextColumn("loss {task.fields[loss]}  error {task.fields[error]}"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=err_console) as progress:
        task = progress.add_task("projecting", total=steps, loss="-", error="-", rate="")

        def on_step(step: int, total: int, info: dict) -> None:
            speed = progress.tasks[0].speed
            progress.update(task, completed=step, loss=f"{info['loss']:.4f}", error=f"{info['error']:.4f}",
                            rate=f"{speed:.1f} step/s" if speed else "")

        res = project(G, img, D=D, perceptual=perceptual, config=cfg, callback=on_step)
    latent_id = LatentStore(latents_dir(checkpoint)).save(
        res.ws, res.noise, {"photo": str(photo), **res.info})
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(res.target).save(out / "target.png")
    Image.fromarray(res.image).save(out / "projected.png")
    (out / "losses.json").write_text(json.dumps({"loss": res.losses, "error": res.errors, **res.info}))
    token = EditState(model=model_id_for(checkpoint), latent=latent_id).encode()
    console.print(f"reconstruction error {res.info['final_error']:.4f} (mean image {res.info['mean_image_error']:.4f})")
    console.print(f"latent [bold]{latent_id}[/] saved in {latents_dir(checkpoint)}; wrote {out}/target.png, projected.png")
    console.print(f"edit it: sneakergan render {token} --model {model}")
