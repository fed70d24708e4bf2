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

from ..errors import EscaleError, UsageError

if TYPE_CHECKING:
    from ..config import Config
    from ..engine import RoundReport

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
    from ..engine import RoundReport
    from ..plugins import get_plugins
    from ..session import sync_section
    from .progress import RoundProgress

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
        else:
            _print_round(name, report, verbosity)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    return all_ok, moved


def _print_round(name: str, report: RoundReport, verbosity: int) -> None:
    """A round's errors and notices on stderr, its summary (and with -v its files) on stdout."""
    from .output import changed_while_read_message, details, summary

    for error in report.errors:
        log.error("[%s] %s", name, error)
    for path in report.changed_while_read:
        log.warning("[%s] %s", name, changed_while_read_message(path))
    if verbosity >= 0:
        typer.echo(summary(name, report))
    if verbosity > 0:
        for line in details(report):
            typer.echo(line)


def through_daemon(config: Config, names: list[str]) -> bool:
    """Ask the running daemon for a round of each section and print how each ended; return
    whether all ended in sync."""
    from ..control import ask_daemon

    all_ok = True
    for name in names:
        answer = ask_daemon(config, "sync", name)
        if answer is None or "error" in answer:
            raise EscaleError(f"escale's daemon: {answer['error'] if answer else 'no answer'}")
        (status,) = answer["sections"]
        pid = answer["pid"]
        if not status["ran"]:
            typer.echo(f"{name}: paused in the daemon (pid {pid}); 'escale resume {name}' first")
            all_ok = False
            continue
        counts = status["summary"]
        state = "in sync" if status["last_in_sync"] else "NOT in sync"
        if status["last_error"]:
            log.error("[%s] %s", name, status["last_error"])
        typer.echo(
            f"{name}: round run by the daemon (pid {pid}): pushed {counts.get('pushed', 0)}, "
            f"pulled {counts.get('pulled', 0)}; {state}"
        )
        all_ok &= bool(status["last_in_sync"])
    return all_ok


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
        from ..config import load_config
        from ..control import ask_daemon
        from ..plugins import get_plugins

        config = load_config(ctx.obj.config, get_plugins())
        names = _sections(config, sections, all_)
        if dry_run and watch:
            raise UsageError("--dry-run makes one round: it cannot be used with --watch")
        if watch:  # the daemon, in the foreground
            watch_sections(
                ctx.obj.config, None if all_ else names, force, ctx.obj.verbosity, as_json
            )
            return
        if not dry_run and not as_json and ask_daemon(config, "status") is not None:
            sys.exit(0 if through_daemon(config, names) else 1)  # never race the daemon
        ok, _ = run_rounds(
            config,
            names,
            force=force,
            verbosity=ctx.obj.verbosity,
            as_json=as_json,
            dry_run=dry_run,
        )
        sys.exit(0 if ok else 1)
