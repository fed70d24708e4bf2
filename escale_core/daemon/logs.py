"""The daemon's log: a file rotated by size (``log_file``, ``log_level``, ``log_rotate``), one
line per event with its time, so that what happened at night can be read in the morning."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

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


def timestamp_stderr() -> None:
    """Put the time at the start of each line escale logs to the terminal (watch mode)."""
    for handler in logging.getLogger("escale").handlers:
        handler.setFormatter(
            logging.Formatter("%(asctime)s escale: %(levelname)s: %(message)s", "%H:%M:%S")
        )
