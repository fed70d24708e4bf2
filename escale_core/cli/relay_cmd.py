"""``escale relay check``: probe a section's relay and print what it really does."""

from __future__ import annotations

import sys

import typer


def register(app: typer.Typer) -> None:
    """Add the ``relay`` command group to ``app``."""
    group = typer.Typer(help="Inspect a section's relay.", no_args_is_help=True)
    app.add_typer(group, name="relay")

    @group.command("check")
    def check(ctx: typer.Context, section: str = typer.Argument(..., help="The section.")) -> None:
        """Probe the relay: write/read/list/delete, streaming, interrupted writes, exclusive
        create, clock skew. Uses a scratch folder it deletes; exit 1 if a probe fails."""
        from ..config import load_config
        from ..plugins import get_plugins
        from ..probe import format_checks, probe_relay
        from ..session import open_section_relay

        config = load_config(ctx.obj.config, get_plugins())
        conf = config.section(section)
        relay = open_section_relay(conf, get_plugins())
        try:
            checks = probe_relay(relay)
        finally:
            relay.close()
        typer.echo(f"[{section}] {conf.address.display()}")
        typer.echo(format_checks(checks))
        sys.exit(1 if any(c.ok is False for c in checks) else 0)
