"""CLI commands of the prepare stage (registered on the main Typer app by `register`)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
