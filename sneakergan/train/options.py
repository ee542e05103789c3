"""Command-line options derived from TrainConfig's fields, so a knob is declared once (train/config.py).

`build_command(name, extra, body)` returns a function whose signature Typer reads: one option per field the
command offers (help and flag name from the field's Knob), every one defaulting to None = "not given", so the
value comes from the run being resumed, the preset or the field default. `body(raw, extras)` receives the
values as typed; `field_values` converts them inside the command's own error handling.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer

from .config import PRESET_FIELDS, ConfigError, Knob, TrainConfig, knobs


def parse_aspect(value: str) -> tuple[int, int]:
    """'3:4' or '3x4' -> (3, 4); a one-line error otherwise."""
    try:
        w, h = (int(v) for v in value.replace("x", ":").split(":"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise ConfigError(f"--aspect {value!r}: use WIDTH:HEIGHT such as 3:4") from None
    return (w, h)


def _base_type(f: dataclasses.Field) -> Any:
    """The field's type without Optional (annotations are strings under `from __future__ import annotations`)."""
    t = typing.get_type_hints(TrainConfig)[f.name]
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        t = args[0] if len(args) == 1 else str
    return t


def _cli_type(f: dataclasses.Field, k: Knob) -> Any:
    if k.kind == "path":
        return Path
    if k.kind == "aspect":
        return str
    if k.kind == "list":
        return List[str]
    t = _base_type(f)
    return t if t in (int, float, str, bool) else str


def _param(name: str, f: dataclasses.Field, k: Knob) -> inspect.Parameter:
    t = _cli_type(f, k)
    flag = k.option(name)
    decl = f"{flag}/--no-{flag[2:]}" if t is bool else flag
    help_text = k.help
    default = f.default
    # Batch, lr, gamma, ... come from the preset: a field default there would mislead.
    if default not in (None, "", ()) and t is not bool and name not in PRESET_FIELDS + ("data", "out"):
        shown = f"{default:g}" if isinstance(default, float) else default
        help_text += f" (default {shown})"  # not "[default: ...]": Rich would read that as markup
    elif name in PRESET_FIELDS:
        help_text += " (default: the preset's, see `sneakergan presets`)"
    option = typer.Option(None, decl, help=help_text, show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[t])


def to_field_value(name: str, k: Knob, value: Any) -> Any:
    """A command-line value as the field's value."""
    if value is None:
        return None
    if k.kind == "path":
        return str(value)
    if k.kind == "aspect":
        return parse_aspect(value)
    if k.kind == "list":
        items = [part.strip() for v in value for part in str(v).split(",") if part.strip()]
        return tuple(items) if items else None
    return value


def field_values(command: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Command-line values as field values (paths as str, WIDTH:HEIGHT as a tuple, metrics split at commas),
    after checking that the command's required options are there."""
    by_name = {f.name: k for f, k in knobs(command)}
    missing = [by_name[n].option(n) for n in by_name if command in by_name[n].required and raw.get(n) is None]
    if missing:
        raise ConfigError(f"{command} needs {', '.join(missing)}")
    flags = {n: to_field_value(n, by_name[n], v) for n, v in raw.items()}
    return {n: v for n, v in flags.items() if v is not None}


Extra = tuple[str, Any, Any]  # (parameter name, annotation, typer.Option(...))


def build_command(command: str, extra: list[Extra], body: Callable[[dict[str, Any], dict[str, Any]], None],
                  doc: str) -> Callable[..., None]:
    """A Typer command function: the fields `command` offers, then `extra` command-only options."""
    fields = knobs(command)
    params = [_param(f.name, f, k) for f, k in fields]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=o, annotation=a) for n, a, o in extra]
    by_name = {f.name: k for f, k in fields}
    extra_names = {n for n, _, _ in extra}

    def command_fn(**kwargs: Any) -> None:
        body({n: v for n, v in kwargs.items() if n in by_name and v is not None}, {n: kwargs[n] for n in extra_names})

    command_fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command_fn.__annotations__ = {p.name: p.annotation for p in params}
    command_fn.__name__ = command
    command_fn.__doc__ = doc
    return command_fn
