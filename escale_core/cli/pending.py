"""Commands of the command-line contract (DESIGN §4) that this release does not provide yet.

They are listed so that ``escale --help`` shows the whole contract; each says it is not
available and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from ..errors import NotImplementedYet


def not_yet(command: str) -> NoReturn:
    """Fail with exit status 2: ``command`` is not available in this release."""
    raise NotImplementedYet(f"'escale {command}' is not implemented in this release yet")


def register(app: typer.Typer) -> None:
    """Add the not-yet-implemented commands to ``app``."""

    @app.command()
    def migrate(
        section: str = typer.Argument(...), dest_url: str = typer.Argument(..., metavar="DEST_URL")
    ) -> None:
        """Copy the relay repository elsewhere and update the configuration."""
        not_yet("migrate")

    @app.command()
    def backup(section: str = typer.Argument(...), archive: Path = typer.Argument(...)) -> None:
        """Save the relay repository into an archive."""
        not_yet("backup")

    @app.command()
    def restore(section: str = typer.Argument(...), archive: Path = typer.Argument(...)) -> None:
        """Restore the relay repository from an archive."""
        not_yet("restore")
