"""sd_notify: the daemon tells systemd how it is (DESIGN §9, sd_notify(3)).

A few datagrams on the Unix socket named by ``$NOTIFY_SOCKET``, with the standard library
only: ``READY=1`` once the workers run and the control socket listens, ``STATUS=`` a one-line
summary of the sections whenever it changes, ``RELOADING=1`` then ``READY=1`` around a SIGHUP
reload, ``STOPPING=1`` when it stops, and ``WATCHDOG=1`` while the main loop is alive when the
unit sets ``WatchdogSec``. Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing, and
a message that cannot be sent is logged at debug level, never raised: systemd is told how the
daemon is, it is not a reason for the daemon to stop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Optional, Protocol

from .worker import SectionStatus

log = logging.getLogger("escale.daemon")

#: the main loop beats about once a second; a heartbeat older than this (or than the watchdog
#: interval, if longer) means it is stuck, and the watchdog stops vouching for it
STUCK_AFTER = 5.0
#: the longest error kept in the status line
ERROR_CHARS = 60


def notify_address(env: Mapping[str, str]) -> Optional[str]:
    """The socket address in ``$NOTIFY_SOCKET``: a path, or ``@name`` in the abstract
    namespace (returned with its leading NUL); ``None`` when unset or of a kind not spoken
    here (``vsock:``)."""
    value = env.get("NOTIFY_SOCKET", "")
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(env: Mapping[str, str], pid: Optional[int] = None) -> Optional[float]:
    """The watchdog interval in seconds (``$WATCHDOG_USEC``), ``None`` when there is none or
    it is meant for another process (``$WATCHDOG_PID``)."""
    owner = env.get("WATCHDOG_PID")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1e6


class Notifier:
    """Sends sd_notify messages to ``address`` (``None``: sends nothing)."""

    def __init__(self, address: Optional[str]) -> None:
        self.address = address

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=value``) in one datagram; whether it was sent."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall("\n".join(fields).encode("utf-8"))
        except OSError as exc:
            log.debug("sd_notify %s not sent: %s", fields[0] if fields else "", exc)
            return False
        return True


class _Worker(Protocol):
    """What the summary reads of a worker (:class:`~.worker.SectionWorker`)."""

    @property
    def status(self) -> SectionStatus: ...


def summary(workers: Mapping[str, _Worker]) -> str:
    """One line for ``systemctl status``: ``2 sections: photos idle, docs backing off
    (relay down)``."""
    if not workers:
        return "no section"
    parts = []
    for name, worker in workers.items():
        status = worker.status
        part = f"{name} {status.state}"
        if status.state == "backing off" and status.last_error:
            part += f" ({_short(status.last_error)})"
        parts.append(part)
    count = len(workers)
    return f"{count} section{'s' if count > 1 else ''}: " + ", ".join(parts)


def _short(error: str) -> str:
    """The first line of ``error``, cut to :data:`ERROR_CHARS` (the status is one line)."""
    line = next(iter(error.strip().splitlines()), "")
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 3] + "..."


class ServiceNotifier:
    """What :class:`~.runner.Daemon` tells systemd, from ``env`` (default: this process's).

    The main loop calls :meth:`update` about once a second: it sends a changed status line
    and is the heartbeat that the watchdog thread checks before each ``WATCHDOG=1``, so a
    daemon whose main loop hangs stops vouching for itself and systemd restarts it.

    :param stuck_after: a main loop silent this long (or the watchdog interval, if longer)
        is taken for stuck.
    """

    def __init__(
        self, env: Optional[Mapping[str, str]] = None, *, stuck_after: float = STUCK_AFTER
    ) -> None:
        env = os.environ if env is None else env
        self.stuck_after = stuck_after
        self.notifier = Notifier(notify_address(env))
        self.interval = watchdog_interval(env) if self.notifier.address else None
        self._beat = time.monotonic()
        self._status: Optional[str] = None
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def ready(self, workers: Mapping[str, _Worker]) -> None:
        """The daemon is up (again, after a reload); start the watchdog if asked for."""
        self._beat = time.monotonic()
        self._status = summary(workers)
        self.notifier.send("READY=1", f"MAINPID={os.getpid()}", f"STATUS={self._status}")
        if self.interval is not None and self._thread is None:
            self._thread = threading.Thread(
                target=self._watchdog, args=(self.interval,), name="sd-watchdog", daemon=True
            )
            self._thread.start()

    def update(self, workers: Mapping[str, _Worker]) -> None:
        """A beat of the main loop: send the status line if it changed."""
        self._beat = time.monotonic()
        line = summary(workers)
        if line != self._status:
            self._status = line
            self.notifier.send(f"STATUS={line}")

    def reloading(self) -> None:
        """A SIGHUP reload starts (:meth:`ready` tells its end)."""
        # MONOTONIC_USEC lets systemd tell this reload from an older one (sd_notify(3))
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> None:
        """The daemon stops: say so and end the watchdog (systemd's stop timeout rules now)."""
        self._done.set()
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watchdog(self, interval: float) -> None:
        stuck_after = max(interval, self.stuck_after)
        while not self._done.wait(interval / 2):
            if time.monotonic() - self._beat < stuck_after:
                self.notifier.send("WATCHDOG=1")
            else:
                log.debug("main loop silent for %.0f s: no watchdog ping", stuck_after)
