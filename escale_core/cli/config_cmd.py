"""``escale config check`` (validate the configuration, show each section's settings) and
``escale config import`` (convert an original Escale INI configuration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import UsageError


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
        from ..checksum import resolve_checksum
        from ..config import load_config, to_toml
        from ..plugins import get_plugins

        config = load_config(ctx.obj.config, get_plugins())
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
        output: Optional[Path] = typer.Option(
            None, "-o", "--output", metavar="NEW.toml", help="Write here instead of stdout."
        ),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing NEW.toml."),
    ) -> None:
        """Convert an original Escale INI configuration into escale's TOML.

        Options without an equivalent are named on standard error, one line each. The relays
        still point at the original relay folders: point each at a new empty folder
        (docs/migrating.md). Exit status 2 for an unreadable or invalid OLD.conf.
        """
        from ..config.editing import write_atomically
        from ..ops.importing import check_loads, import_file
        from ..plugins import get_plugins

        if output is not None and output.exists() and not force:
            raise UsageError(f"{output} exists: not overwritten (add --force to replace it)")
        plugins = get_plugins()
        imported = import_file(old, plugins)
        for line in imported.warnings:
            typer.echo(f"warning: {line}", err=True)
        problem = check_loads(imported, output or old.resolve().with_suffix(".toml"), plugins)
        if problem is not None:
            typer.echo(f"warning: the result does not load yet: {problem}", err=True)
        if output is None:
            typer.echo(imported.text(), nl=False)
            return
        write_atomically(output, imported.text())
        typer.echo(
            f"wrote {output}: point each relay at a new empty folder, then run "
            f"'escale -c {output} config check'",
            err=True,
        )
