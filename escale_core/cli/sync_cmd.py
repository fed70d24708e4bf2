"""``escale sync``: one round (or ``--watch`` rounds) per section."""

from __future__ import annotations

import json
import logging
import sys
from typing import Optional

import typer

from ..config import Config, load_config
from ..engine import RoundReport
from ..errors import EscaleError, UsageError
from ..history import TimeQuotaController
from ..plugins import get_plugins
from ..session import sync_section
from .output import changed_while_read_message, details, summary
from .progress import RoundProgress

log = logging.getLogger("escale")


def _sections(config: Config, names: Optional[list[str]], all_: bool) -> list[str]:
    if all_:
        if names:
            raise UsageError("name sections or use --all, not both")
        return list(config.sections)
    if not names:
        raise UsageError("name the section(s) to sync, or use --all")
    for name in names:
        config.section(name)  # fails with the list of known sections
    return names


def run_rounds(
    config: Config,
    names: list[str],
    *,
    force: bool,
    verbosity: int,
    as_json: bool,
    dry_run: bool = False,
) -> tuple[bool, bool]:
    """One round of each section; return whether all ended in sync, and whether anything
    moved (a dry run: whether all would end in sync)."""
    plugins = get_plugins()
    all_ok, moved = True, False
    results = {}
    for name in names:
        section = config.section(name)
        try:
            with RoundProgress(
                name, enabled=None if verbosity >= 0 and not as_json else False
            ) as bar:
                report = sync_section(
                    config, section, plugins, force=force, progress=bar, dry_run=dry_run
                )
        except EscaleError as exc:
            if exc.exit_code == 2:
                raise
            log.error("%s", exc)
            # the shape of a round's report, so that a reader handles one shape
            failed = RoundReport(dry_run=dry_run).as_dict()
            results[name] = {**failed, "error": str(exc), "in_sync": False}
            all_ok = False
            continue
        all_ok &= report.in_sync
        moved |= report.transferred
        if as_json:
            results[name] = {**report.as_dict(), "error": None}
            continue
        for error in report.errors:
            log.error("[%s] %s", name, error)
        for path in report.changed_while_read:
            log.warning("[%s] %s", name, changed_while_read_message(path))
        if verbosity >= 0:
            typer.echo(summary(name, report))
        if verbosity > 0:
            for line in details(report):
                typer.echo(line)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    return all_ok, moved


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
        config = load_config(ctx.obj.config, get_plugins())
        names = _sections(config, sections, all_)
        if dry_run and watch:
            raise UsageError("--dry-run makes one round: it cannot be used with --watch")
        refresh = min(config.section(n).refresh for n in names)
        controller = TimeQuotaController(refresh)
        while True:
            ok, moved = run_rounds(
                config,
                names,
                force=force,
                verbosity=ctx.obj.verbosity,
                as_json=as_json,
                dry_run=dry_run,
            )
            if not watch:
                sys.exit(0 if ok else 1)
            controller.record(moved)
            controller.wait()
