"""CLI commands of the edit stage: directions (sub-app), mix, interpolate, walk, project, render."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..console import console, fail, progress_bar

CHECKPOINT = typer.Option(..., "--checkpoint", "--model", help="Model file (.safetensors/.json or stem).")

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
def _load_G(checkpoint: Path, device: str = "cpu"):
    from ..generate import load_generator, resolve_device
    from ..modelfile import ModelFileError

    try:
        return load_generator(checkpoint, resolve_device(device))
    except (ModelFileError, ValueError) as e:
        fail(str(e))


def _renderer(checkpoint: Path, device: str = "cpu", model_id: str | None = None):
    from .directions import DirectionsError
    from .render import Renderer, model_id_for

    G = _load_G(checkpoint, device)
    try:
        return Renderer.from_model(checkpoint, model_id=model_id or model_id_for(checkpoint), G=G)
    except (DirectionsError, ValueError) as e:
        fail(str(e))


def _seeds(spec: str) -> list[int]:
    from ..generate import parse_seeds

    try:
        return parse_seeds(spec)
    except ValueError as e:
        fail(str(e))


def _load_directions(checkpoint: Path):
    from .directions import DirectionSet, DirectionsError, directions_path

    try:
        return DirectionSet.load(directions_path(checkpoint))
    except DirectionsError as e:
        fail(str(e))


def _save_directions(checkpoint: Path, ds) -> None:
    from .directions import directions_path

    ds.save(directions_path(checkpoint))


def _get(ds, did: str):
    from .directions import DirectionsError

    try:
        return ds.get(did)
    except DirectionsError as e:
        fail(str(e))


def _num_ws(checkpoint: Path) -> int:
    from ..modelfile import ModelFileError, read_meta
    from ..nets import NetworkConfig

    try:
        cfg = NetworkConfig.from_dict(read_meta(checkpoint)["config"])
    except (ModelFileError, KeyError, ValueError) as e:
        fail(str(e))
    return 2 * (cfg.resolution.bit_length() - 1) - 2


# ---- directions ---------------------------------------------------------------------------------------------------------
@directions_app.command("compute")
def directions_compute(
    checkpoint: Path = CHECKPOINT,
    method: str = typer.Option("sefa", help="sefa | ganspace."),
    num: int = typer.Option(10, "--num", min=1, help="Directions per layer range (SeFa) or components (GANSpace)."),
    layers: str = typer.Option("all,coarse,middle,fine", help="SeFa layer ranges, comma-separated."),
    samples: int = typer.Option(10000, min=100, help="Random w samples for sigma (and for GANSpace's PCA)."),
    device: str = typer.Option("cpu", help="cpu | cuda | auto."),
) -> None:
    """Find directions and merge them into NAME.directions.json (names, order and ranges people set are kept)."""
    from .directions import DirectionSet, DirectionsError, compute_directions, directions_path

    G = _load_G(checkpoint, device)
    ranges = [r.strip() for r in layers.split(",") if r.strip()]
    try:
        new = compute_directions(G, method, num, ranges, samples=samples)
        path = directions_path(checkpoint)
        ds = DirectionSet.load_or_empty(path)
    except DirectionsError as e:
        fail(str(e))
    ds.model = Path(checkpoint).name
    ds.merge(new)
    ds.save(path)
    console.print(f"{len(new)} {method} directions -> {path} ({len(ds)} in all)")


@directions_app.command("list")
def directions_list(checkpoint: Path = CHECKPOINT,
                    all_: bool = typer.Option(True, "--all/--visible", help="Include hidden directions.")) -> None:
    """Table of the directions in editor order."""
    from rich.table import Table

    ds = _load_directions(checkpoint)
    table = Table(title=f"directions of {Path(checkpoint).name}")
    for col in ("order", "id", "name", "method", "layers", "sigma", "score", "shown"):
        table.add_column(col, no_wrap=True)
    for d in ds:
        if d.hidden and not all_:
            continue
        table.add_row(str(d.order), d.id, d.name, d.method, d.layers, f"{d.sigma:.3f}", f"{d.score:.4g}",
                      "no" if d.hidden else "yes")
    console.print(table)


@directions_app.command("name")
def directions_name(checkpoint: Path = typer.Argument(..., help="Model file."),
                    direction: str = typer.Argument(..., help="Direction id."),
                    name: str = typer.Argument(..., help='Display name, e.g. "sole height".')) -> None:
    """Give a direction the name the editor shows."""
    ds = _load_directions(checkpoint)
    name = name.strip()
    if not name or len(name) > 60:
        fail("a name must be 1-60 characters")
    _get(ds, direction).name = name
    _save_directions(checkpoint, ds)
    console.print(f"{direction} is now {name!r}")


def _set_hidden(checkpoint: Path, ids: list[str], hidden: bool) -> None:
    ds = _load_directions(checkpoint)
    for did in ids:
        _get(ds, did).hidden = hidden
    _save_directions(checkpoint, ds)
    console.print(f"{'hid' if hidden else 'showing'} {len(ids)} direction(s) in the editor")


@directions_app.command("hide")
def directions_hide(checkpoint: Path = typer.Argument(..., help="Model file."),
                    ids: List[str] = typer.Argument(..., help="Direction ids.")) -> None:
    """Hide directions from the editor (they stay in the file and old share links keep working)."""
    _set_hidden(checkpoint, ids, True)


@directions_app.command("show-in-editor")
def directions_unhide(checkpoint: Path = typer.Argument(..., help="Model file."),
                      ids: List[str] = typer.Argument(..., help="Direction ids.")) -> None:
    """Show hidden directions in the editor again."""
    _set_hidden(checkpoint, ids, False)


@directions_app.command("order")
def directions_order(checkpoint: Path = typer.Argument(..., help="Model file."),
                     ids: List[str] = typer.Argument(..., help="Direction ids, first shown first.")) -> None:
    """Put these directions first, in this order (the rest keep their order after them)."""
    from .directions import DirectionsError

    ds = _load_directions(checkpoint)
    try:
        ds.reorder(list(ids))
    except DirectionsError as e:
        fail(str(e))
    _save_directions(checkpoint, ds)
    console.print("order: " + ", ".join(ds.ids()[: len(ids) + 3]) + (" ..." if len(ds) > len(ids) + 3 else ""))


@directions_app.command("range")
def directions_range(checkpoint: Path = typer.Argument(..., help="Model file."),
                     direction: str = typer.Argument(..., help="Direction id."),
                     layers: str = typer.Argument(..., help="all | coarse | middle | fine | a-b (ws indices).")) -> None:
    """Set the layer range a direction is applied to."""
    from .directions import DirectionsError, check_layers

    ds = _load_directions(checkpoint)
    d = _get(ds, direction)
    try:
        d.layers = check_layers(layers, _num_ws(checkpoint))
    except DirectionsError as e:
        fail(str(e))
    _save_directions(checkpoint, ds)
    console.print(f"{direction} now acts on {layers}")


@directions_app.command("show")
def directions_show(
    checkpoint: Path = typer.Argument(..., help="Model file."),
    direction: str = typer.Argument(..., help="Direction id."),
    out: Path = typer.Option(Path("direction.png"), "--out", help="Contact sheet PNG."),
    seeds: str = typer.Option("0-3", help="Seeds, one per row."),
    amounts: str = typer.Option("-3,-2,-1,0,1,2,3", help="Amounts in sigma, one per column."),
    psi: float = typer.Option(0.7, help="Truncation psi."),
) -> None:
    """Contact sheet of a direction: rows are seeds, columns amounts (in sigma)."""
    from ..generate import make_grid
    from .state import EditState, EditStateError

    r = _renderer(checkpoint)
    _get(_load_directions(checkpoint), direction)
    try:
        amts = [float(a) for a in amounts.split(",") if a.strip()]
    except ValueError:
        fail(f"cannot read amounts {amounts!r}: use numbers like -3,0,3")
    seed_list = _seeds(seeds)
    try:
        states = [EditState(model=r.model_id, seed=s, psi=psi, edits=((direction, a),)) for s in seed_list for a in amts]
    except EditStateError as e:
        fail(str(e))
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
    checkpoint: Path = CHECKPOINT,
    rows: str = typer.Option("0-3", help="Seeds whose other styles are kept (A), one per row."),
    cols: str = typer.Option("4-7", help="Seeds the styles come from (B), one per column."),
    layers: str = typer.Option("coarse", help="Layers taken from B: coarse | middle | fine | all | a-b."),
    psi: float = typer.Option(0.7, help="Truncation psi."),
    out: Path = typer.Option(Path("mix.png"), "--out", help="Grid PNG."),
) -> None:
    """Style-mixing grid: top row B, left column A, cell = A with B's chosen layers."""
    import numpy as np

    from ..generate import make_grid
    from .state import EditState, EditStateError

    r = _renderer(checkpoint)
    a_seeds, b_seeds = _seeds(rows), _seeds(cols)
    try:
        tops = r.render_batch([EditState(model=r.model_id, seed=s, psi=psi) for s in b_seeds])
        lefts = r.render_batch([EditState(model=r.model_id, seed=s, psi=psi) for s in a_seeds])
        cells = [EditState(model=r.model_id, seed=a, psi=psi, mixes=((b, layers),)) for a in a_seeds for b in b_seeds]
        for c in cells:
            r.validate(c)
    except EditStateError as e:
        fail(str(e))
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
    checkpoint: Path = CHECKPOINT,
    out: Path = typer.Option(Path("render.png"), "--out", help="PNG to write."),
    size: Optional[int] = typer.Option(None, help="Resize so the longer side is this many pixels."),
) -> None:
    """Render an edit state token to a PNG."""
    from PIL import Image

    from .render import model_id_for
    from .state import EditState, EditStateError

    try:
        state = EditState.decode(token)
    except EditStateError as e:
        fail(str(e))
    if state.model != model_id_for(checkpoint):
        console.print(f"[yellow]note:[/] the token names model {state.model!r}; rendering with {checkpoint}")
    r = _renderer(checkpoint, model_id=state.model)
    try:
        arr = r.render(state)
    except EditStateError as e:
        fail(str(e))
    img = Image.fromarray(arr)
    if size:
        s = size / max(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    console.print(f"wrote {out}")


# ---- interpolation ------------------------------------------------------------------------------------------------------
def _write_frames(frames, out: Path, fps: float, size: Optional[int]) -> None:
    from .interpolate import InterpolateError, upscale, write_strip, write_video

    try:
        write_video(upscale(frames, size), out, fps)
    except InterpolateError as e:
        fail(str(e))
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
    checkpoint: Path = CHECKPOINT,
    seeds: Optional[str] = typer.Option(None, help="Seeds to pass through, e.g. 1,5,9 (instead of tokens)."),
    psi: float = typer.Option(0.7, help="Truncation psi for --seeds."),
    mode: str = typer.Option("w", help="w: lerp the ws | z: slerp the seeds' z."),
    frames: int = typer.Option(30, min=2, help="Frames per segment."),
    loop: bool = typer.Option(False, help="Return to the first state."),
    fps: float = typer.Option(24.0, help="Frames per second."),
    size: Optional[int] = typer.Option(256, help="Longer side of the video frames (0 = model size)."),
    out: Path = typer.Option(Path("interpolation.gif"), "--out", help=".gif or .mp4 (+ NAME.strip.png)."),
) -> None:
    """Interpolate between 2+ states or seeds and write a GIF/MP4 plus a frame strip."""
    from .interpolate import InterpolateError, interpolate_ws
    from .state import EditState, EditStateError

    if bool(states) == bool(seeds):
        fail("give either state tokens or --seeds (not both)")
    r = _renderer(checkpoint)
    try:
        if seeds:
            path = [EditState(model=r.model_id, seed=s, psi=psi) for s in _seeds(seeds)]
        else:
            path = [EditState.decode(t).replace(model=r.model_id) for t in states]
        ws = interpolate_ws(r, path, frames=frames, mode=mode, loop=loop)
    except (EditStateError, InterpolateError) as e:
        fail(str(e))
    _write_frames(_render_frames(r, ws, path[0].noise), out, fps, size or None)


def walk(
    checkpoint: Path = CHECKPOINT,
    seed: Optional[int] = typer.Option(None, help="Seed to walk around."),
    state: Optional[str] = typer.Option(None, help="Or an edit state token (seed-based)."),
    psi: float = typer.Option(0.7, help="Truncation psi for --seed."),
    frames: int = typer.Option(60, min=2, help="Frames in the loop."),
    radius: float = typer.Option(0.4, min=0.0, max=3.0, help="Size of the neighbourhood (in units of |z|)."),
    walk_seed: int = typer.Option(0, help="Seed of the loop's two random directions."),
    fps: float = typer.Option(24.0, help="Frames per second."),
    size: Optional[int] = typer.Option(256, help="Longer side of the video frames (0 = model size)."),
    out: Path = typer.Option(Path("walk.gif"), "--out", help=".gif or .mp4 (+ NAME.strip.png)."),
) -> None:
    """A seamless looping video of a seed's latent neighbourhood."""
    from .interpolate import InterpolateError, walk_ws
    from .state import EditState, EditStateError

    if (seed is None) == (state is None):
        fail("give either --seed or --state")
    r = _renderer(checkpoint)
    try:
        st = EditState(model=r.model_id, seed=seed, psi=psi) if state is None else \
            EditState.decode(state).replace(model=r.model_id)
        ws = walk_ws(r, st, frames=frames, radius=radius, walk_seed=walk_seed)
    except (EditStateError, InterpolateError) as e:
        fail(str(e))
    _write_frames(_render_frames(r, ws, st.noise), out, fps, size or None)


# ---- projection -----------------------------------------------------------------------------------------------------------
def project_cmd(
    photo: Path = typer.Argument(..., help="Photo of a sneaker (any size; normalised like `prepare`)."),
    checkpoint: Path = CHECKPOINT,
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

    from ..console import err_console
    from ..generate import resolve_device
    from ..modelfile import ModelFileError, load_checkpoint, read_meta
    from .latents import LatentStore, latents_dir
    from .project import ProjectConfig, ProjectError, load_perceptual, load_photo, project
    from .render import model_id_for
    from .state import EditState

    try:
        img = load_photo(photo)
        dev = resolve_device(device)
        has_d = "D" in read_meta(checkpoint).get("nets", [])
        ckpt = load_checkpoint(checkpoint, nets=("G_ema", "D") if (has_d and d_loss) else ("G_ema",), device=dev)
        perceptual = load_perceptual(lpips).to(dev) if lpips else None
    except (ProjectError, ModelFileError, ValueError) as e:
        fail(str(e))
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

        try:
            res = project(G, img, D=D, perceptual=perceptual, config=cfg, callback=on_step)
        except ProjectError as e:
            fail(str(e))
    latent_id = LatentStore(latents_dir(checkpoint)).save(
        res.ws, res.noise, {"photo": str(photo), **res.info})
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(res.target).save(out / "target.png")
    Image.fromarray(res.image).save(out / "projected.png")
    (out / "losses.json").write_text(json.dumps({"loss": res.losses, "error": res.errors, **res.info}))
    token = EditState(model=model_id_for(checkpoint), latent=latent_id).encode()
    console.print(f"reconstruction error {res.info['final_error']:.4f} (mean image {res.info['mean_image_error']:.4f})")
    console.print(f"latent [bold]{latent_id}[/] saved in {latents_dir(checkpoint)}; wrote {out}/target.png, projected.png")
    console.print(f"edit it: sneakergan render {token} --checkpoint {checkpoint}")
