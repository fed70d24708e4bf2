"""``escale migrate SECTION DEST_URL``: move a section's repository to another relay
(:mod:`escale_core.ops.migrate`)."""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``migrate`` to ``app``."""

    @app.command("migrate")
    def migrate_(
        ctx: typer.Context,
        section: str = typer.Argument(..., help="The section."),
        dest_url: str = typer.Argument(..., metavar="DEST_URL", help="The new relay address."),
        option: Optional[list[str]] = typer.Option(
            None,
            "--option",
            "-o",
            metavar="KEY=VALUE",
            help="A relay option of the destination (repeatable); replaces relay_options.",
        ),
    ) -> None:
        """Copy the relay repository to DEST_URL, verify every object, and switch the section's
        relay there in the configuration file; the old relay tells its clients where it went."""
        from ..config import load_config
        from ..ops.migrate import migrate, parse_options
        from ..plugins import get_plugins

        plugins = get_plugins()
        config = load_config(ctx.obj.config, plugins)
        options = parse_options(option) if option else None
        report = migrate(config, section, plugins, dest_url, options, progress=typer.echo)
        parts = [f"{report.copied} objects copied ({report.bytes} bytes)"]
        if report.skipped:
            parts.append(f"{report.skipped} already there")
        if report.replaced:
            parts.append(f"{report.replaced} that differed copied again")
        if report.deleted:
            parts.append(f"{report.deleted} stale deleted")
        typer.echo(f"[{section}] {', '.join(parts)}; every copy verified")
        typer.echo(
            f'[{section}] relay = "{report.destination}" set in {config.file}; clients of the old '
            "relay are told to do the same"
        )
