"""``escale fix SECTION``: repair the relay's repository from this client's local folder."""

from __future__ import annotations

import json
import sys

import typer


def register(app: typer.Typer) -> None:
    """Add the ``fix`` command to ``app``."""

    @app.command()
    def fix(
        ctx: typer.Context,
        section: str = typer.Argument(..., help="The section."),
        read_data: bool = typer.Option(
            False, "--read-data", help="Also find data objects whose bytes do not authenticate."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Rebuild the relay's state from this client's up-to-date local folder: put back a
        lost header, delete damaged updates and leftovers, re-send the whole folder as a full
        update. Never changes a local file; run it again if interrupted."""
        from ..config import load_config
        from ..ops.fix import fix_repository
        from ..ops.maintenance import maintenance
        from ..plugins import get_plugins
        from .progress import RoundProgress

        plugins = get_plugins()
        config = load_config(ctx.obj.config, plugins)
        conf = config.section(section)
        with (
            maintenance(config, conf, plugins, f"fix {section}") as m,
            RoundProgress(section, enabled=None if not as_json else False) as progress,
        ):
            report = fix_repository(m, read_data, progress)
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2))
        else:
            for line in report.done:
                typer.echo(f"[{section}] {line}")
            if not report.done:
                typer.echo(f"[{section}] nothing to repair")
        failed = report.round is not None and bool(report.round.errors)
        sys.exit(1 if failed else 0)
