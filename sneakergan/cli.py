"""The `sneakergan` command line: one Typer app.

Commands that belong to a stage live beside that stage (`sneakergan/<stage>/commands.py`, each with a
`register(app)`), so the CLI file stays a table of contents. Heavy imports (torch, scrapy, fastapi) happen
inside the command functions: `sneakergan --help` stays instant.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="sneakergan",
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
    app()


if __name__ == "__main__":
    main()
