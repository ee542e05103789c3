"""Shared console helpers for CLI commands: one Rich console per stream, one-line errors, a progress bar.

Output that is not a terminal (a pipe, a log file, a test runner) gets a very wide console, so tables keep their
natural width instead of being squeezed to Rich's 80-column fallback (which cuts cells like "24,001,0...").
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, NoReturn

import typer
from rich.console import Console, ConsoleDimensions
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import UserError

# Wide enough for any table this CLI prints; text lines are soft-wrapped by whatever shows the log.
PIPE_WIDTH = 1000


class CliConsole(Console):
    """A Rich console that is terminal-width on a terminal and PIPE_WIDTH wide everywhere else.

    Off a terminal, COLUMNS is ignored too: CI runners and test harnesses set it to 80, which is what cut tables.
    """

    def __init__(self, *args: Any, width: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, width=width, **kwargs)
        self._fixed_width = width is not None

    @property
    def size(self) -> ConsoleDimensions:
        if not self._fixed_width and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, 25)
        return super().size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._fixed_width = True
        self._width, self._height = new_size


console = CliConsole()
err_console = CliConsole(stderr=True)


def error_line(message: str) -> str:
    """A message as the one line the CLI prints (newlines folded: the line is the whole story)."""
    return " ".join(str(message).split())


def print_error(message: str) -> None:
    """Print `error: message` as one line on stderr (the message is printed as is: no markup, no wrapping)."""
    from rich.text import Text

    err_console.print(Text.assemble(("error:", "bold red"), " ", error_line(message)), soft_wrap=True,
                      highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with a user mistake: one error line, exit `code` (2 = UserError, caught by the CLI's entry point)."""
    if code == 2:
        raise UserError(message)
    print_error(message)
    raise typer.Exit(code)


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = "it") -> Iterator[Callable[[int], None]]:
    """A Rich progress bar showing count, rate and ETA; yields `advance(n)`."""
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[progress.percentage]{task.percentage:>3.0f}%"),
        TextColumn("•"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=err_console, transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int = 1) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            if speed:
                progress.update(task, rate=f"{speed:.1f} {unit}/s")

        yield advance
