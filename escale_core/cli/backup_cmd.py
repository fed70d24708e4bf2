"""``escale backup`` and ``escale restore``: a section's relay objects in a tar archive
(:mod:`escale_core.ops.backup`)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``backup`` and ``restore`` to ``app``."""

    @app.command("backup")
    def backup_(
        ctx: typer.Context,
        section: str = typer.Argument(..., help="The section."),
        archive: str = typer.Argument(..., help="The tar archive to write ('-': stdout)."),
        force: bool = typer.Option(
            False, "--force", help="Replace an existing ARCHIVE file (else refused)."
        ),
    ) -> None:
        """Save the relay objects of the repository (as they are: still encrypted) into a tar
        archive; an existing ARCHIVE is kept unless --force."""
        from ..config import load_config
        from ..ops.backup import backup
        from ..plugins import get_plugins

        plugins = get_plugins()
        config = load_config(ctx.obj.config, plugins)
        # with '-' the archive is stdout: the summary goes to stderr
        say = (lambda line: typer.echo(line, err=True)) if archive == "-" else typer.echo
        target = archive if archive == "-" else Path(archive)
        backup(config, section, plugins, target, force=force, progress=say)
        sys.stdout.flush()

    @app.command("restore")
    def restore_(
        ctx: typer.Context,
        section: str = typer.Argument(..., help="The section."),
        archive: Path = typer.Argument(..., help="The tar archive written by 'escale backup'."),
        force: bool = typer.Option(
            False, "--force", help="Replace what the relay folder holds (else refused)."
        ),
    ) -> None:
        """Put the relay objects of an archive back on the section's relay (checked first;
        the header last)."""
        from ..config import load_config
        from ..ops.backup import restore
        from ..plugins import get_plugins

        plugins = get_plugins()
        config = load_config(ctx.obj.config, plugins)
        restore(config, section, plugins, archive, force=force, progress=typer.echo)
