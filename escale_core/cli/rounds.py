"""One round of each section, as ``escale sync`` runs it (without ``--watch``): its report
on stdout, its errors on stderr, or the running daemon's round. No typer here: the plain
``escale sync`` is parsed without it (:mod:`.main`)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Optional

from ..errors import EscaleError, UsageError

if TYPE_CHECKING:
    from ..config import Config
    from ..engine import RoundReport
    from .main import SyncRequest

log = logging.getLogger("escale")


def echo(text: str) -> None:
    """A line on stdout, now (a report is read as it comes)."""
    print(text, flush=True)


def sync_once(request: SyncRequest) -> int:
    """``escale sync`` without ``--watch``: one round of each section named (or all), by the
    running daemon if there is one; the exit status (0: all in sync)."""
    from ..config import load_config
    from ..control import ask_daemon
    from ..plugins import get_plugins

    config = load_config(request.config, get_plugins())
    names = section_names(config, request.sections, request.all_)
    if not request.dry_run and not request.as_json and ask_daemon(config, "status") is not None:
        return 0 if through_daemon(config, names) else 1  # never race the daemon
    ok, _ = run_rounds(
        config,
        names,
        force=request.force,
        verbosity=request.verbosity,
        as_json=request.as_json,
        dry_run=request.dry_run,
    )
    return 0 if ok else 1


def section_names(config: Config, names: Optional[list[str]], all_: bool) -> list[str]:
    """The sections a command names (``all_``: every one); a usage error for none, both, or
    a section the configuration lacks."""
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
        echo(json.dumps(results, indent=2))
    return all_ok, moved


def _print_round(name: str, report: RoundReport, verbosity: int) -> None:
    """A round's errors and notices on stderr, its summary (and with -v its files) on stdout."""
    from .output import changed_while_read_message, details, summary

    for error in report.errors:
        log.error("[%s] %s", name, error)
    for path in report.changed_while_read:
        log.warning("[%s] %s", name, changed_while_read_message(path))
    if verbosity >= 0:
        echo(summary(name, report))
    if verbosity > 0:
        for line in details(report):
            echo(line)


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
            echo(f"{name}: paused in the daemon (pid {pid}); 'escale resume {name}' first")
            all_ok = False
            continue
        counts = status["summary"]
        state = "in sync" if status["last_in_sync"] else "NOT in sync"
        if status["last_error"]:
            log.error("[%s] %s", name, status["last_error"])
        echo(
            f"{name}: round run by the daemon (pid {pid}): pushed {counts.get('pushed', 0)}, "
            f"pulled {counts.get('pulled', 0)}; {state}"
        )
        all_ok &= bool(status["last_in_sync"])
    return all_ok
