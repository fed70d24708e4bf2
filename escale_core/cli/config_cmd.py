"""``escale config check``: validate the configuration and show each section's settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..checksum import resolve_checksum
from ..config import Config, load_config, to_toml
from ..plugins import get_plugins
from .pending import not_yet


def _load(ctx: typer.Context) -> Config:
    return load_config(ctx.obj.config, get_plugins())


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group to ``app``."""
    group = typer.Typer(help="Check or import configuration files.", no_args_is_help=True)
    app.add_typer(group, name="config")

    @group.command("check")
    def check(
        ctx: typer.Context,
        section: Optional[str] = typer.Argument(None, help="Only this section."),
        as_json: bool = typer.Option(False, "--json", help="Print the settings as JSON."),
    ) -> None:
        """Validate the configuration and print each section's effective settings.

        Secrets are masked. Exit status 0 when valid, 2 otherwise.
        """
        config = _load(ctx)
        sections = [config.section(section)] if section else list(config.sections.values())
        checksums = get_plugins().checksums
        if as_json:
            out = {
                s.name: {
                    **s.settings(),
                    "checksum_resolved": resolve_checksum(s.checksum, checksums),
                }
                for s in sections
            }
            typer.echo(json.dumps({"file": str(config.file), "sections": out}, indent=2))
            return
        typer.echo(f"# {config.file}: valid, {len(config.sections)} section(s)")
        for s in sections:
            typer.echo("")
            if s.checksum == "auto":
                typer.echo(f"# checksum auto = {resolve_checksum('auto', checksums)}")
            typer.echo(to_toml(s))

    @group.command("import")
    def import_(
        old: Path = typer.Argument(
            ..., metavar="OLD.conf", help="An original Escale INI configuration file."
        ),
    ) -> None:
        """Convert an original Escale INI configuration into escale's TOML."""
        not_yet("config import")
