"""``escale service install|uninstall``: the daemon as a systemd user service (a launchd agent
on macOS), DESIGN §9."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``service`` command group to ``app``."""
    group = typer.Typer(
        help="Run the daemon as a user service (systemd; launchd on macOS).", no_args_is_help=True
    )
    app.add_typer(group, name="service")

    @group.command("install")
    def install(
        ctx: typer.Context,
        print_only: bool = typer.Option(
            False, "--print", help="Print the unit (or plist) instead of installing it."
        ),
        config: Optional[Path] = typer.Option(
            None,
            "--config",
            "-c",
            metavar="FILE",
            help="The configuration the service runs (default: escale's -c, then the usual "
            "places); pinned by its absolute path.",
        ),
    ) -> None:
        """Write the user service that runs the daemon at login, restarted if it fails, and
        start it (systemctl --user enable --now)."""
        from ..daemon import service

        config_file = config if config is not None else ctx.obj.config
        if print_only:
            content = service.service_file(config_file, os.environ).content
            sys.stdout.write(content.decode("utf-8"))
            return
        typer.echo(service.install(config_file, os.environ))

    @group.command("uninstall")
    def uninstall() -> None:
        """Stop the user service and remove its file."""
        from ..daemon import service

        typer.echo(service.uninstall(os.environ))
