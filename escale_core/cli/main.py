"""The ``escale`` entry point: logging, error handling and exit statuses around the command line.

typer parses the command line (:mod:`.app`), except for the two commands that scripts and
benchmarks run most, parsed here in their plain forms without importing typer, whose import
and application build are a quarter of a short sync's start:

* ``escale [-c FILE] [-q | -v...] sync [--all] [--force] [--dry-run | -n] [--json] SECTION...``
* ``escale --version``

Any other form (``--watch``, ``--help``, a misspelt option, ``-vc FILE``...) goes to typer,
which runs the same code (:func:`.rounds.sync_once`) or says what is wrong.

Exit status: 0 success; 1 a transfer or the relay failed; 2 usage or configuration error.
Errors are one line on standard error; ``ESCALE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Optional, Union

from ..errors import EscaleError

log = logging.getLogger("escale")


@dataclass
class SyncRequest:
    """``escale sync`` as :func:`parse_plain_sync` read it."""

    config: Optional[Path] = None
    verbosity: int = 0
    sections: list[str] = field(default_factory=list)
    all_: bool = False
    force: bool = False
    dry_run: bool = False
    as_json: bool = False


#: The flags of ``sync`` that the plain form takes, and the field each sets.
_SYNC_FLAGS = {
    "--all": "all_",
    "--force": "force",
    "--dry-run": "dry_run",
    "-n": "dry_run",
    "--json": "as_json",
}


def parse_plain_sync(args: list[str]) -> Optional[SyncRequest]:
    """``args`` as a :class:`SyncRequest` if they are ``sync`` in its plain form (see the
    module's text), else ``None``: typer parses them."""
    request, quiet, verbose = SyncRequest(), False, 0
    tokens = iter(args)
    for token in tokens:
        if token in ("-c", "--config") or token.startswith("--config="):
            value = token[9:] if token.startswith("--config=") else next(tokens, "")
            if not value or value.startswith("-"):
                return None
            request.config = Path(value)
        elif token in ("-q", "--quiet"):
            quiet = True
        elif token == "--verbose":
            verbose += 1
        elif len(token) > 1 and token[0] == "-" and set(token[1:]) == {"v"}:
            verbose += len(token) - 1
        elif token == "sync":
            break
        else:
            return None
    else:
        return None  # no command
    request.verbosity = -1 if quiet else verbose
    for token in tokens:
        if token in _SYNC_FLAGS:
            setattr(request, _SYNC_FLAGS[token], True)
        elif token.startswith("-"):
            return None
        else:
            request.sections.append(token)
    return request


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


def _run(args: list[str]) -> None:
    """Run the command line; end with SystemExit where a command says its status."""
    if args == ["--version"]:
        from .. import __version__

        print(f"escale {__version__}")
        return
    request = parse_plain_sync(args)
    if request is not None:
        from .rounds import sync_once

        sys.exit(sync_once(request))
    from .app import build_app

    previous = _catch_interrupts()
    try:
        build_app(args)(args=args, prog_name="escale")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class Interrupted(BaseException):
    """Ctrl-C in a command typer runs. click turns a KeyboardInterrupt into ``Aborted!`` and
    status 1; this one passes through click, and :func:`main` exits 130 as documented."""


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    raise Interrupted()


def _catch_interrupts() -> Optional[Union[Callable[[int, Optional[FrameType]], Any], int]]:
    """Make Ctrl-C raise :class:`Interrupted`; return the handler it replaced (``None`` when
    signals cannot be set here, not the main thread, or when SIGINT is ignored, as for a
    command started with ``&`` by a script)."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background
            return None
        return signal.signal(signal.SIGINT, _interrupt)
    except ValueError:
        return None


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``escale`` console script."""
    args = sys.argv[1:] if argv is None else argv
    _setup_logging(_log_level(args))
    debug = bool(os.environ.get("ESCALE_DEBUG"))
    try:
        _run(args)
    except EscaleError as exc:
        if debug:
            raise
        log.error("%s", exc)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Interrupted):
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
