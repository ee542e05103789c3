"""CLI commands of the serve stage: `serve` (the website) and `gallery build` (pre-rendered WebP + index)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import cli_options
from ..cli_options import MODEL_HELP, model_option, psi_option, resolve_model
from ..console import console, fail, progress_bar

gallery_app = typer.Typer(help="The site's pre-rendered gallery.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("serve")(serve)
    gallery_app.command("build")(gallery_build)
    app.add_typer(gallery_app, name="gallery")


def serve(
    model: Optional[Path] = model_option(None, help=MODEL_HELP + " Default: the shipped demo model."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (127.0.0.1 keeps it local)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port."),
    psi: float = psi_option(help="Truncation of plain seed images (home page, gallery)."),
    gallery: Optional[Path] = typer.Option(None, help="Gallery folder (default: NAME.gallery beside the model)."),
    project_steps: int = typer.Option(150, min=1, max=5000, help="Optimisation steps of a photo projection."),
    max_batch: int = typer.Option(16, min=1, max=256, help="Images per generator call."),
    batch_wait_ms: float = typer.Option(4.0, min=0, max=100, help="How long a render waits for a batch to fill."),
    max_queue: int = typer.Option(256, min=1, help="Queued renders beyond which requests get 503 + Retry-After."),
    cache_mb: int = typer.Option(64, min=0, help="Server-side image cache size (MB)."),
    device: str = typer.Option("auto", help="cpu | cuda | auto."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Public address share links start with "
                                           "(default: http://HOST:PORT as started)."),
    prerender: int = typer.Option(10000, "--prerender", min=0, max=2**32,
                                  help="Gallery tiles rendered in the background while idle (0: only on demand)."),
    precision: str = typer.Option("fp32", help="fp32 (default: single editor renders gain nothing from bf16) | auto (bf16 on CPUs with native bf16 / CUDA with bf16: batches of 8 ~1.4x faster) | bf16 | fp16."),
) -> None:
    """Serve "This Sneaker Does Not Exist": home page, permalinks, gallery, editor and JSON API."""
    import uvicorn

    from .app import ServeConfig, create_app
    from .engine import EngineConfig
    from .model_source import find_model
    from .pool import PoolConfig

    if model is not None:
        model = resolve_model(model)
    cli_options.device(device)  # cuda on a machine without it: one line now, not a traceback later
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        fail("--base-url must start with http:// or https://")  # a bad flag is reported whatever the port's state
    _check_port(host, port)  # before the model loads: a taken port should fail in a second, with one line
    shown_host = f"[{host}]" if ":" in host else host
    config = ServeConfig(
        engine=EngineConfig(psi=psi, device=device, precision=precision, gallery_dir=gallery,
                            project_steps=project_steps),
        pool=PoolConfig(max_batch=max_batch, max_wait_ms=batch_wait_ms, max_queue=max_queue),
        # On a wildcard address the links use the address each visitor reached (the socket's, never Host).
        cache_bytes=cache_mb << 20, gallery_fill=prerender,
        base_url=base_url or (None if host in ("0.0.0.0", "::", "") else f"http://{shown_host}:{port}"))
    source = find_model(model)
    if source.banner:
        console.print(f"[yellow]note:[/] {source.banner}")
    app = create_app(config=config, source=source)
    engine = app.state.engine
    if engine.directions_note:  # e.g. a directions file computed on other weights, ignored
        console.print(f"[yellow]warning:[/] {engine.directions_note}", highlight=False, soft_wrap=True)
    console.print(f"serving [bold]{engine.model_id}[/] ({engine.width}x{engine.height}, "
                  f"{len(engine.gallery.files) if engine.gallery else 0} pre-rendered) on http://{shown_host}:{port}/")
    from .protocol import TimedH11Protocol

    # Slow or idle clients must not hold sockets: keep-alive 5 s, a request's head within 10 s, body chunks
    # within 15 s of each other (TimedH11Protocol), and at most 1000 connections at once (503 beyond).
    uvicorn.run(app, host=host, port=port, log_level="warning", http=TimedH11Protocol, timeout_keep_alive=5,
                limit_concurrency=1000, h11_max_incomplete_event_size=16 << 10)


def _check_port(host: str, port: int) -> None:
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        fail(f"cannot listen on {host}:{port} (unknown host: {e.strerror})")
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does, so TIME_WAIT is no obstacle
        try:
            s.bind(addr)
        except OSError as e:
            fail(f"cannot listen on {host}:{port} ({e.strerror or e})")


def gallery_build(
    count: int = typer.Option(10000, min=1, max=2**32, help="How many seeds to pre-render (seeds start..start+count-1)."),
    start: int = typer.Option(0, min=0, max=2**32 - 1, help="First seed."),
    model: Optional[Path] = model_option(None, help=MODEL_HELP + " Default: the shipped demo model."),
    out: Optional[Path] = typer.Option(None, "--out", help="Gallery folder (default: NAME.gallery beside the model)."),
    psi: float = psi_option(help="Truncation; must match `serve --psi` for the server to use it."),
    batch: int = typer.Option(16, min=1, max=512, help="Images per generator call."),
    device: str = typer.Option("auto", help="cpu | cuda | auto."),
) -> None:
    """Pre-render the gallery as WebP with an index (resumable: seeds already there are skipped)."""
    from .engine import Engine, EngineConfig
    from .gallery import build_gallery, default_gallery_dir
    from .model_source import find_model

    if start + count > 2**32:
        fail("start + count must stay within [0, 2^32)")
    if model is not None:
        model = resolve_model(model)
    cli_options.device(device)  # cuda on a machine without it: one line now, not a traceback later
    source = find_model(model)
    if source.banner:
        console.print(f"[yellow]note:[/] {source.banner}")
    engine = Engine.load(source, EngineConfig(psi=psi, device=device))
    root = out or default_gallery_dir(source.path)
    try:
        with progress_bar("rendering gallery", total=count, unit="img") as advance:
            idx = build_gallery(root, range(start, start + count), engine.render_seeds, engine.weights_sha256, psi,
                                batch_size=batch, on_batch=advance)
    except OSError as e:
        fail(f"cannot write the gallery to {root} ({e.strerror or e})")
    console.print(f"gallery: {len(idx.files)} images in {root}")

