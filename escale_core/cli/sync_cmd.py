"""``escale sync``: one round (or ``--watch`` rounds) per section."""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..errors import UsageError

if TYPE_CHECKING:
    from ..engine import RoundReport

log = logging.getLogger("escale")


def watch_sections(
    config_file: Optional[Path],
    names: Optional[list[str]],
    force: bool,
    verbosity: int,
    as_json: bool,
) -> None:
    """Keep ``names`` (``None``: every section, holding the daemon's pid file) in sync in the
    foreground until interrupted: the daemon's code, printing each round with its time."""
    from ..daemon import Daemon
    from ..daemon.logs import timestamp_stderr
    from ..session import sync_section
    from .output import details, summary

    timestamp_stderr()

    def printed(name: str, report: RoundReport) -> None:
        if as_json:
            typer.echo(json.dumps({name: {**report.as_dict(), "error": None}}))
            return
        for error in report.errors:
            log.error("[%s] %s", name, error)
        if verbosity >= 0:
            typer.echo(f"{time.strftime('%H:%M:%S')} {summary(name, report)}")
        if verbosity > 0:
            for line in details(report):
                typer.echo(line)

    one_round = functools.partial(sync_section, force=force)  # the daemon's round, with --force
    Daemon(config_file, names, pid_file=names is None, on_round=printed, run_round=one_round).run()


def register(app: typer.Typer) -> None:
    """Add ``sync`` to ``app``."""

    @app.command()
    def sync(
        ctx: typer.Context,
        sections: Optional[list[str]] = typer.Argument(
            None, metavar="SECTION...", show_default=False
        ),
        all_: bool = typer.Option(False, "--all", help="Every section."),
        watch: bool = typer.Option(
            False,
            "--watch",
            help="Keep syncing, pausing adaptively between refresh/2 and refresh seconds.",
        ),
        force: bool = typer.Option(False, "--force", help="Propagate a mass deletion."),
        dry_run: bool = typer.Option(
            False,
            "--dry-run",
            "-n",
            help="Say what would be pushed, pulled, deleted and kept as conflicts; change "
            "nothing, locally or on the relay.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print each round's report as JSON."),
    ) -> None:
        """One round: push local changes, pull others'; exit 0 when in sync.

        Exit status 1 when a transfer or the relay failed, or something waits (quota, a mass
        deletion needing --force); 2 for usage or configuration errors.
        """
        from .main import SyncRequest
        from .rounds import sync_once

        if dry_run and watch:
            raise UsageError("--dry-run makes one round: it cannot be used with --watch")
        if watch:  # the daemon, in the foreground
            from ..config import load_config
            from ..plugins import get_plugins
            from .rounds import section_names

            names = section_names(load_config(ctx.obj.config, get_plugins()), sections, all_)
            watch_sections(
                ctx.obj.config, None if all_ else names, force, ctx.obj.verbosity, as_json
            )
            return
        request = SyncRequest(
            ctx.obj.config, ctx.obj.verbosity, sections or [], all_, force, dry_run, as_json
        )
        sys.exit(sync_once(request))
