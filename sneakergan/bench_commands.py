"""`sneakergan bench`: the project's benchmarks in one table, with the machine they ran on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .console import console, fail


def register(app: typer.Typer) -> None:
    """Add the bench command to the main app."""
    app.command("bench")(bench)


def bench(
    device: str = typer.Option("auto", help="cpu | cuda | auto."),
    full: bool = typer.Option(False, "--full", help="Longer runs and paper256 too (the default finishes in ~5 min on 2 cores)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the rows and machine as JSON."),
    precision: str = typer.Option("auto", help="auto (fp32 and, side by side, bf16 where the device has it) | fp32 | bf16 | fp16."),
) -> None:
    """Generator throughput, training img/s, edit-render latency and prepare throughput on this machine, per precision."""
    from .threads import set_wait_policy

    set_wait_policy()  # as `train` waits, so its rows compare (no effect if torch was loaded already)
    from rich.console import Console
    from rich.table import Table

    from .bench import bench_precisions, machine_info, run_all
    from .generate import resolve_device

    try:
        dev = resolve_device(device)
        precs = bench_precisions(precision, dev)
    except ValueError as e:
        fail(str(e))
    info = machine_info(dev)
    console.print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    rows = run_all(dev, quick=not full, precisions=precs)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    table = Table(title="sneakergan bench")
    for c in cols:
        table.add_column(c, justify="left" if c in ("bench", "config") else "right", no_wrap=True)
    for r in rows:
        table.add_row(*["-" if r.get(c) is None else str(r[c]) for c in cols])
    # Logs and pipes get the whole table rather than cells squeezed to 80 columns.
    (console if console.is_terminal else Console(width=160)).print(table)
    if json_out:
        json_out.write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
        console.print(f"wrote {json_out}")
