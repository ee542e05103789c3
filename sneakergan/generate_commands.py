"""CLI commands of the model stage: presets, generate, import, export."""

import typer


def register(app: typer.Typer) -> None:
    """Add the model commands to the main app."""
