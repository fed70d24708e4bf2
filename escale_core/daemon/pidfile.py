"""The daemon's pid file: a lock held for the daemon's life, so a second daemon on the same
configuration is refused with a line naming the running one, and a pid file left by a killed
daemon (no lock held) is simply taken over."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO, Optional

from ..config import Config
from ..errors import EscaleError
from ..state import make_state_folder, state_dir, state_folder_error


class DaemonRunningError(EscaleError):
    """A daemon already runs on this configuration."""


def get_pid_file(config: Config) -> Path:
    """The pid file of the daemon of ``config`` (in its state folder, as the original's
    ``get_pid_file``)."""
    return state_dir(config.globals.state_dir) / "escale.pid"


class PidFile:
    """The pid file at ``path``, locked while :meth:`acquire`'d."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Optional[IO[str]] = None

    def acquire(self) -> None:
        """Lock the file and write this process's pid in it.

        :raises DaemonRunningError: another process holds it.
        :raises StateError: the state folder cannot be written.
        """
        make_state_folder(self.path.parent)
        try:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open
        except OSError as exc:
            raise state_folder_error(self.path.parent, exc) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DaemonRunningError(
                f"escale's daemon is already running (pid {holder}, pid file {self.path}); "
                "'escale stop' stops it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Remove the file and drop the lock."""
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None


def running_pid(path: Path) -> Optional[int]:
    """The pid of the daemon holding the pid file at ``path``, or ``None`` when none runs
    (no file, or a file left by a killed daemon: nobody holds its lock)."""
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
