"""``escale check SECTION [--read-data] [--json]``: verify the repository on the relay."""

from __future__ import annotations

import json
import sys

import typer


def register(app: typer.Typer) -> None:
    """Add the ``check`` command to ``app``."""

    @app.command()
    def check(
        ctx: typer.Context,
        section: str = typer.Argument(..., help="The section."),
        read_data: bool = typer.Option(
            False, "--read-data", help="Also read and authenticate every byte of every data object."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Verify the relay's repository without changing it: object names, header and key,
        client states, manifests, data objects (sizes; every byte with --read-data).

        Exit 1 if anything is damaged ('escale fix SECTION' repairs it); orphans, leftovers
        and unknown objects are warnings."""
        from ..config import load_config
        from ..ops.check import check_repository
        from ..ops.maintenance import maintenance
        from ..plugins import get_plugins
        from .progress import RoundProgress

        plugins = get_plugins()
        config = load_config(ctx.obj.config, plugins)
        conf = config.section(section)
        command = f"check {section}" + (" --read-data" if read_data else "")
        with (
            maintenance(config, conf, plugins, command) as m,
            RoundProgress(section, enabled=None if not as_json else False) as progress,
        ):
            report = check_repository(m, read_data, progress)
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2))
        else:
            for finding in report.findings:
                typer.echo(f"[{section}] {finding.line()}")
            typer.echo(report.summary())
        sys.exit(1 if report.damaged else 0)
