"""``escale start``, ``stop`` and ``restart``: the daemon of DESIGN §9 in the background."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

import typer

from ..errors import EscaleError

log = logging.getLogger("escale")

#: how long ``start`` waits for the daemon to hold its pid file
START_TIMEOUT = 30.0


def start_daemon(config_file: Optional[Path]) -> int:
    """Start the daemon in the background; return its pid once it holds its pid file.

    :raises DaemonRunningError: one already runs on this configuration.
    :raises EscaleError: it stopped before it was up (its log says why).
    """
    from ..config import load_config
    from ..daemon import DaemonRunningError, get_pid_file, running_pid
    from ..daemon.logs import log_path
    from ..daemon.service import daemon_command
    from ..plugins import get_plugins

    config = load_config(config_file, get_plugins())  # a bad configuration fails here, now
    pid_file = get_pid_file(config)
    running = running_pid(pid_file)
    if running is not None:
        raise DaemonRunningError(
            f"escale's daemon is already running (pid {running}, pid file {pid_file}); "
            "'escale stop' stops it"
        )
    logfile = log_path(config)
    command = daemon_command(config_file)  # the service runs the very same
    try:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        errors = open(logfile, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise EscaleError(
            f"log file {logfile}: {(exc.strerror or 'cannot be written').lower()}; set the "
            "global key log_file to a writable place"
        ) from None
    with errors:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,  # what fails before the log is set up still lands in it
            start_new_session=True,  # leaves the terminal's session: a closed shell keeps it
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if running_pid(pid_file) == child.pid:
            return child.pid
        if child.poll() is not None:
            raise EscaleError(
                f"escale's daemon stopped as it started (exit {child.returncode}); see {logfile}"
            )
        time.sleep(0.05)
    raise EscaleError(f"escale's daemon did not start within {START_TIMEOUT:.0f} s; see {logfile}")


def stop_daemon(config_file: Optional[Path]) -> Optional[int]:
    """Stop the running daemon (SIGTERM, then wait); return its pid, ``None`` if none ran."""
    from ..config import load_config
    from ..daemon import get_pid_file, running_pid
    from ..daemon.runner import STOP_TIMEOUT
    from ..plugins import get_plugins

    config = load_config(config_file, get_plugins())
    pid_file = get_pid_file(config)
    pid = running_pid(pid_file)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT + 5
    while time.monotonic() < deadline:
        if running_pid(pid_file) is None:
            return pid
        time.sleep(0.05)
    raise EscaleError(f"escale's daemon (pid {pid}) did not stop within {STOP_TIMEOUT + 5:.0f} s")


def _tell(config_file: Optional[Path], command: str, section: Optional[str], done: str) -> None:
    """Send ``command`` to the running daemon and print what it did."""
    from ..config import load_config
    from ..control import ask_daemon
    from ..plugins import get_plugins

    config = load_config(config_file, get_plugins())
    if section is not None:
        config.section(section)  # an unknown section fails with the list of known ones
    answer = ask_daemon(config, command, section)
    if answer is None:
        raise EscaleError(f"escale's daemon is not running: nothing to {command} ('escale start')")
    if "error" in answer:
        raise EscaleError(f"escale's daemon: {answer['error']}")
    names = ", ".join(s["section"] for s in answer["sections"]) or "no section"
    typer.echo(f"{done}: {names} (daemon pid {answer['pid']})")


def register(app: typer.Typer) -> None:
    """Add ``start``, ``stop``, ``restart`` and the hidden ``daemon-run`` to ``app``."""

    @app.command()
    def start(ctx: typer.Context) -> None:
        """Start the daemon: every section kept in sync in the background (pid file, log)."""
        pid = start_daemon(ctx.obj.config)
        typer.echo(f"escale's daemon is running (pid {pid})")

    @app.command()
    def stop(ctx: typer.Context) -> None:
        """Stop the daemon: the rounds running finish, nothing is half-applied."""
        pid = stop_daemon(ctx.obj.config)
        typer.echo("escale's daemon is not running" if pid is None else f"stopped (pid {pid})")

    @app.command()
    def restart(ctx: typer.Context) -> None:
        """Stop the daemon if it runs, then start it (with the configuration as it is now)."""
        stop_daemon(ctx.obj.config)
        pid = start_daemon(ctx.obj.config)
        typer.echo(f"escale's daemon is running (pid {pid})")

    @app.command()
    def pause(
        ctx: typer.Context,
        section: Optional[str] = typer.Argument(None, help="Only this section."),
    ) -> None:
        """Hold the daemon's rounds (every section, or one) until ``resume``."""
        _tell(ctx.obj.config, "pause", section, "paused")

    @app.command()
    def resume(
        ctx: typer.Context,
        section: Optional[str] = typer.Argument(None, help="Only this section."),
    ) -> None:
        """Let the daemon's rounds run again, starting with one now."""
        _tell(ctx.obj.config, "resume", section, "resumed")

    @app.command("daemon-run", hidden=True)
    def daemon_run(ctx: typer.Context) -> None:
        """The daemon itself, in the foreground, logging to its log file, or to the journal
        under systemd (``start`` and the service run it)."""
        from ..config import load_config
        from ..daemon import Daemon
        from ..daemon.logs import daemon_log
        from ..plugins import get_plugins

        config = load_config(ctx.obj.config, get_plugins())
        daemon_log(config)
        Daemon(ctx.obj.config).run()
