"""The root of the ``escale`` command line: global options, error handling, exit statuses.

Exit status: 0 success; 1 a transfer or the relay failed; 2 usage or configuration error.
Errors are one line on standard error; ``ESCALE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from .. import __version__
from ..errors import EscaleError

log = logging.getLogger("escale")


@dataclass
class Options:
    """The global options, handed to every command through ``ctx.obj``."""

    config: Optional[Path] = None
    verbosity: int = 0


def _version(value: bool) -> None:
    if value:
        typer.echo(f"escale {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """Build the application with the core commands and every plugin's commands."""
    from ..plugins import get_plugins
    from . import (
        access_cmd,
        backup_cmd,
        check_cmd,
        clients_cmd,
        config_cmd,
        daemon_cmd,
        demo_cmd,
        fix_cmd,
        init_cmd,
        key_cmd,
        migrate_cmd,
        pending,
        plugins_cmd,
        relay_cmd,
        service_cmd,
        status_cmd,
        sync_cmd,
        versions_cmd,
    )

    app = typer.Typer(
        name="escale",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        help="Keep folders in sync through an untrusted passive relay storage.",
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        ctx: typer.Context,
        config: Optional[Path] = typer.Option(
            None,
            "--config",
            "-c",
            metavar="FILE",
            help="Configuration file "
            "(default: $ESCALE_CONFIG, then escale.toml in the user config directory).",
        ),
        verbose: int = typer.Option(
            0, "--verbose", "-v", count=True, help="More output (-vv: debug)."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors."),
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        """Keep folders in sync through an untrusted passive relay storage."""
        ctx.obj = Options(config=config, verbosity=-1 if quiet else verbose)

    sync_cmd.register(app)
    status_cmd.register(app)
    access_cmd.register(app)
    plugins_cmd.register(app)
    demo_cmd.register(app)
    relay_cmd.register(app)
    init_cmd.register(app)
    key_cmd.register(app)
    config_cmd.register(app)
    versions_cmd.register(app)
    clients_cmd.register(app)
    check_cmd.register(app)
    fix_cmd.register(app)
    daemon_cmd.register(app)
    service_cmd.register(app)
    migrate_cmd.register(app)
    backup_cmd.register(app)
    pending.register(app)
    get_plugins().register_commands(app)
    return app


def _log_level(argv: list[str]) -> int:
    """The stderr log level from -v/-q, read before typer parses (plugins log while loading)."""
    if os.environ.get("ESCALE_DEBUG"):
        return logging.DEBUG
    verbose = sum(a.count("v") for a in argv if a.startswith("-") and set(a[1:]) == {"v"})
    verbose += argv.count("--verbose")
    if "-q" in argv or "--quiet" in argv:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def _setup_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("escale: %(levelname)s: %(message)s"))
    root = logging.getLogger("escale")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.ERROR, "error")
    logging.addLevelName(logging.INFO, "info")
    logging.addLevelName(logging.DEBUG, "debug")


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``escale`` console script."""
    args = sys.argv[1:] if argv is None else argv
    _setup_logging(_log_level(args))
    debug = bool(os.environ.get("ESCALE_DEBUG"))
    try:
        app = build_app()
        app(args=args, prog_name="escale")
    except EscaleError as exc:
        if debug:
            raise
        log.error("%s", exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        log.error("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line, traceback on demand
        if debug:
            raise
        log.error(
            "internal error: %s: %s (set ESCALE_DEBUG=1 for a traceback, and please report it)",
            type(exc).__name__,
            exc,
        )
        sys.exit(1)
