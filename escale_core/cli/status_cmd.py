"""``escale status``: per section, last sync, pending work, relay usage, conflicts, errors."""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any, Optional

import typer

from .output import human_size, not_synced_phrase


def _when(timestamp: Optional[float]) -> str:
    if timestamp is None:
        return "never"
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def format_status(s: dict[str, Any], verbose: bool = False) -> str:
    """A few lines per section (``verbose``: the symlinks and unreadable files by name)."""
    usage = "unknown" if s["relay_usage"] is None else human_size(s["relay_usage"])
    down = "unknown" if s["pending_down"] is None else str(s["pending_down"])
    state = {True: "in sync", False: "NOT in sync", None: "-"}[s["last_in_sync"]]
    lines = [
        f"[{s['section']}] {s['path']} <-> {s['relay']} ({s['mode']})",
        f"  last sync: {_when(s['last_sync'])} ({state})",
        f"  pending: {s['pending_up']} to push, {s['pending_deletions']} deletions, "
        f"{down} updates to pull",
        f"  relay usage: {usage}; conflicts: {len(s['conflicts'])}",
    ]
    lines += [f"  notice: {n}" for n in s["notices"]]
    lines += [f"  conflict: {c}" for c in s["conflicts"]]
    named = s["not_synced"]
    not_synced = not_synced_phrase(s["skipped_symlinks"], named["unreadable"])
    if not_synced:
        lines.append(f"  last round: {not_synced}")
    if verbose:
        lines += [f"  symlink, not synced: {p}" for p in named["symlinks"]]
        lines += [f"  unreadable, not synced: {p}" for p in named["unreadable"]]
    lines += [f"  last error: {e}" for e in s["last_errors"]]
    if s["error"]:
        lines.append(f"  relay error: {s['error']}")
    return "\n".join(lines)


def _daemon_state(worker: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The running daemon's view of a section (``None``: no daemon syncs it)."""
    if worker is None:
        return None
    keys = ("state", "rounds", "checks", "last_round", "last_error", "next_round", "failures")
    return {key: worker.get(key) for key in keys} | {"transfer": worker.get("transfer")}


def _daemon_line(daemon: dict[str, Any]) -> str:
    """``in the daemon: pushing 12.0 MiB at 40.0 MiB/s`` or ``...: idle, next round at ...``."""
    line = f"\n  in the daemon: {daemon['state']}"
    transfer = daemon.get("transfer")
    if transfer:
        rate = f" at {human_size(transfer['rate'])}/s" if transfer["rate"] else ""
        return line + f" {human_size(transfer['bytes'])}{rate}"
    when = daemon["next_round"]
    if when is None or daemon["state"] in ("paused", "stopped"):
        return line
    return line + f", next check at {_when(when)} (or at the next change)"


def register(app: typer.Typer) -> None:
    """Add ``status`` to ``app``."""

    @app.command()
    def status(
        ctx: typer.Context,
        section: Optional[str] = typer.Argument(None, help="Only this section."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Per section: last sync, pending up/down, relay usage, conflicts, errors.

        Exit status 1 when a relay cannot be read.
        """
        from ..config import load_config
        from ..control import ask_daemon
        from ..daemon import get_pid_file, running_pid
        from ..plugins import get_plugins
        from ..status import section_status

        config = load_config(ctx.obj.config, get_plugins())
        names = [section] if section else list(config.sections)
        results = [section_status(config, config.section(n), get_plugins()) for n in names]
        live = ask_daemon(config, "status")
        workers = {w["section"]: w for w in (live or {}).get("sections", [])}
        for result in results:  # what the running daemon is doing with each section
            result["daemon"] = _daemon_state(workers.get(result["section"]))
        if as_json:  # keyed by section, as ``sync --json``
            typer.echo(json.dumps({s["section"]: s for s in results}, indent=2))
        else:
            verbose = ctx.obj.verbosity > 0
            pid = running_pid(get_pid_file(config))
            typer.echo("daemon: not running" if pid is None else f"daemon: running (pid {pid})")
            blocks = [format_status(s, verbose) for s in results]
            for index, result in enumerate(results):
                if result["daemon"] is not None:
                    blocks[index] += _daemon_line(result["daemon"])
            typer.echo("\n".join(blocks))
        sys.exit(1 if any(s["error"] for s in results) else 0)
