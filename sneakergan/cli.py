"""The `sneakergan` command line: one Typer app.

Commands that belong to a stage live beside that stage (`sneakergan/<stage>/commands.py`, each with a
`register(app)`), so the CLI file stays a table of contents. Heavy imports (torch, scrapy, fastapi) happen
inside the command functions: `sneakergan --help` stays instant.

Errors: every user mistake, in any command, ends the same way: one `error: ...` line on stderr and exit 2.
That covers `sneakergan.errors.UserError` (raised by any stage, caught only here) and Click's own usage errors
(a missing option, a value out of range). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer
from typer.core import TyperGroup

from .errors import UserError

# Typer >= 0.20 vendors Click (typer._click), older versions use Click itself: take the classes from wherever
# typer.BadParameter comes from rather than importing either by name.
_CLICK_EXCEPTIONS = sys.modules[typer.BadParameter.__module__]
UsageError = _CLICK_EXCEPTIONS.UsageError
# Raised when a group is called without a subcommand; Click shows the help for it (not an error line).
NoArgsIsHelpError = getattr(_CLICK_EXCEPTIONS, "NoArgsIsHelpError", ())


class SneakerganGroup(TyperGroup):
    """The top-level command group: catches user mistakes once, for every subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        with _one_line_errors():  # `sneakergan --nope`
            return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_errors():  # every subcommand: its option parsing and its run
            return super().invoke(ctx)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn a user mistake into `error: ...` on stderr and exit 2; let everything else through."""
    from .console import print_error

    try:
        yield
    except NoArgsIsHelpError:
        raise  # `sneakergan directions` alone: Click prints the help, as it should
    except UsageError as e:
        hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        print_error(e.format_message() + hint)
        raise typer.Exit(2) from None
    except UserError as e:
        print_error(str(e))
        raise typer.Exit(2) from None


app = typer.Typer(
    name="sneakergan",
    cls=SneakerganGroup,
    help="Scraped sneaker photos -> StyleGAN2-ADA -> 'This Sneaker Does Not Exist'.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Pipeline order: collect -> prepare -> train -> generate -> edit -> serve (+ metrics/bench).
STAGE_COMMAND_MODULES = (
    "sneakergan.collect.commands",
    "sneakergan.prepare.commands",
    "sneakergan.train.commands",
    "sneakergan.generate_commands",
    "sneakergan.edit.commands",
    "sneakergan.serve.commands",
    "sneakergan.metrics.commands",
    "sneakergan.bench_commands",
)

for _module in STAGE_COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Console-script entry point."""
    from .allocator import keep_freed_memory

    keep_freed_memory()  # before any command allocates tensors: faster CPU training and rendering (allocator.py)
    app()


if __name__ == "__main__":
    main()
