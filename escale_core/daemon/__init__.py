"""The daemon: every section of a configuration kept in sync in one process (DESIGN §9).

- :mod:`.pidfile`: the pid file with its lock (one daemon per configuration);
- :mod:`.worker`: one thread per section, running rounds, backing off after errors;
- :mod:`.runner`: the workers of a configuration, signals (SIGTERM stops, SIGHUP reloads);
- :mod:`.logs`: the rotated log file with timestamps.

``escale start`` runs :class:`~.runner.Daemon` in a detached process; ``escale sync --all
--watch`` runs the very same code in the foreground.
"""

from __future__ import annotations

from .pidfile import DaemonRunningError, PidFile, get_pid_file, running_pid
from .runner import Daemon
from .worker import SectionStatus, SectionWorker

__all__ = [
    "Daemon",
    "DaemonRunningError",
    "PidFile",
    "SectionStatus",
    "SectionWorker",
    "get_pid_file",
    "running_pid",
]
