"""The daemon's log: a file rotated by size (``log_file``, ``log_level``, ``log_rotate``), one
line per event with its time, so that what happened at night can be read in the morning.

Under systemd, with no ``log_file`` set, the log goes to the journal instead: standard error
with sd-daemon(3) priority prefixes, without times (the journal keeps its own)."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, TextIO

from ..config import Config
from ..state import make_state_folder, state_dir

#: a log file is rotated when it reaches this size
ROTATE_BYTES = 1 << 20
LINE = "%(asctime)s %(levelname)s %(message)s"


def log_path(config: Config) -> Path:
    """The daemon's log file: ``log_file``, else ``escale.log`` in the state folder."""
    return config.globals.log_file or state_dir(config.globals.state_dir) / "escale.log"


def log_to_file(config: Config) -> Path:
    """Send escale's log to the rotated log file of ``config``; return its path."""
    path = log_path(config)
    make_state_folder(path.parent)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=ROTATE_BYTES, backupCount=config.globals.log_rotate, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(LINE, "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("escale")
    root.handlers[:] = [handler]
    root.setLevel(config.globals.log_level.upper())
    return path


def priority(level: int) -> int:
    """The sd-daemon(3) priority of a log level: 3 error, 4 warning, 6 info, 7 debug."""
    if level >= logging.ERROR:
        return 3
    if level >= logging.WARNING:
        return 4
    return 6 if level >= logging.INFO else 7


class JournalFormatter(logging.Formatter):
    """``<6>message``: each line of a record (a traceback too) carries the record's priority,
    since the journal reads one prefix per line."""

    def format(self, record: logging.LogRecord) -> str:
        level = priority(record.levelno)
        text = super().format(record)
        return "\n".join(f"<{level}>{line}" for line in text.splitlines() or [""])


def journal_stream(
    env: Optional[Mapping[str, str]] = None, stream: Optional[TextIO] = None
) -> bool:
    """Whether ``stream`` (standard error) is connected to the journal: ``$JOURNAL_STREAM``
    names its device and inode (a child process that inherited the variable but not the
    stream does not match)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        info = os.fstat((sys.stderr if stream is None else stream).fileno())
    except (ValueError, OSError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


def log_to_journal(config: Config) -> None:
    """Send escale's log to standard error, for the journal, at ``log_level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter("%(message)s"))
    root = logging.getLogger("escale")
    root.handlers[:] = [handler]
    root.setLevel(config.globals.log_level.upper())


def daemon_log(config: Config) -> Optional[Path]:
    """Set up the daemon's log: the journal under systemd when no ``log_file`` is set, else
    the rotated file; return the file's path (``None``: the journal)."""
    if config.globals.log_file is None and journal_stream():
        log_to_journal(config)
        return None
    return log_to_file(config)


def timestamp_stderr() -> None:
    """Put the time at the start of each line escale logs to the terminal (watch mode)."""
    for handler in logging.getLogger("escale").handlers:
        handler.setFormatter(
            logging.Formatter("%(asctime)s escale: %(levelname)s: %(message)s", "%H:%M:%S")
        )
