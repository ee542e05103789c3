"""Options shared by every command, so the same flag means the same thing, with the same default, everywhere.

- `--model` (alias `--checkpoint`): a model file, a training checkpoint or a run folder (see `modelref`).
- `--psi` (alias `--trunc`): truncation for viewing, 0.7 by default, range-checked before any work. Metrics are
  the exception and say so: they sample at psi 1 (no truncation), as the reference's metrics do.
- `--seeds`, `--device`: parsed once, with one-line errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .edit.state import PSI_RANGE
from .errors import UserError

MODEL_HELP = ("Model: NAME.safetensors, NAME.json or NAME (a model file or a training checkpoint), or a run "
              "folder (its latest checkpoint).")
PSI_DEFAULT = 0.7
PSI_HELP = f"Truncation psi: 1 = none, lower = closer to the average sneaker; range [{PSI_RANGE[0]:g}, {PSI_RANGE[1]:g}]."


def model_option(default: Any = ..., help: str = MODEL_HELP) -> Any:
    """The `--model` / `--checkpoint` option (required unless a default is given)."""
    return typer.Option(default, "--model", "--checkpoint", help=help)


def psi_option(default: float = PSI_DEFAULT, help: str = PSI_HELP) -> Any:
    """The `--psi` / `--trunc` option: Click checks the range while parsing, i.e. before any work."""
    return typer.Option(default, "--psi", "--trunc", min=PSI_RANGE[0], max=PSI_RANGE[1], help=help)


MODEL = model_option()
PSI = psi_option()


def resolve_model(path: Path) -> Path:
    """`--model` as the model file to load (a run folder gives its latest checkpoint)."""
    from .modelref import resolve_model as _resolve

    return _resolve(path)


def parse_seeds(spec: str) -> list[int]:
    """`--seeds` such as `0-99,120` as a list, or a UserError."""
    from .generate import parse_seeds as _parse

    try:
        return _parse(spec)
    except UserError:
        raise
    except ValueError as e:
        raise UserError(str(e)) from None


def device(name: str) -> Any:
    """`--device` (cpu | cuda | auto) as a torch.device, or a UserError (e.g. cuda on a machine without one)."""
    from .generate import resolve_device

    try:
        return resolve_device(name)
    except UserError:
        raise
    except (ValueError, RuntimeError) as e:
        raise UserError(str(e)) from None
