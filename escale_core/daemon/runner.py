"""The daemon: one worker per section, in one process.

SIGTERM and SIGINT stop it: no new round starts, the rounds running finish (a round is the
unit the crash guarantees of DESIGN §2 cover), then it exits. SIGHUP reloads the
configuration: workers of removed or changed sections stop, new ones start; a configuration
that no longer loads is reported and the running one kept. Under systemd it tells its
manager how it is (:mod:`.sdnotify`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Callable, Optional

from ..config import Config, load_config
from ..engine import RoundReport
from ..errors import ConfigError
from ..plugins import get_plugins
from .control import ControlServer, socket_path
from .pidfile import PidFile, get_pid_file
from .sdnotify import ServiceNotifier
from .worker import RoundRunner, SectionWorker

log = logging.getLogger("escale")

#: how long ``stop`` waits for the rounds running to finish
STOP_TIMEOUT = 30.0


class Daemon:
    """The workers of a configuration's sections.

    :param config_file: the configuration (``None``: the usual places), read again on SIGHUP.
    :param sections: the sections to keep in sync (``None``: all of them, the configuration's
        own list, which SIGHUP may change).
    :param pid_file: hold the configuration's pid file (one daemon per configuration).
    :param on_round: called after each round with the section's name and report.
    :param run_round: runs one round of a section (default: a plain ``escale sync``).
    """

    def __init__(
        self,
        config_file: Optional[Path],
        sections: Optional[list[str]] = None,
        *,
        pid_file: bool = True,
        on_round: Optional[Callable[[str, RoundReport], None]] = None,
        run_round: Optional[RoundRunner] = None,
    ) -> None:
        self.config_file, self.names = config_file, sections
        self.on_round, self.run_round = on_round, run_round
        self.plugins = get_plugins()
        self.config = load_config(config_file, self.plugins)
        self.workers: dict[str, SectionWorker] = {}
        self._pid = PidFile(get_pid_file(self.config)) if pid_file else None
        self._stopping = threading.Event()
        self._reload = threading.Event()

    def run(self) -> None:
        """Run until SIGTERM or SIGINT (or :meth:`stop`)."""
        if self._pid is not None:
            self._pid.acquire()
        previous = self._install_signals()
        control, service = None, ServiceNotifier()  # service: tells systemd, when under it
        try:
            if self._pid is not None:  # the daemon of a configuration answers its socket
                control = ControlServer(socket_path(self.config), lambda: dict(self.workers))
                control.start()
            self._start_workers(self.config)
            log.info("daemon started: %s", ", ".join(self.workers) or "no section")
            service.ready(self.workers)
            while not self._stopping.is_set():
                self._reload.wait(1.0)
                if self._reload.is_set() and not self._stopping.is_set():
                    self._reload.clear()
                    service.reloading()
                    self.reload()
                    service.ready(self.workers)
                service.update(self.workers)
        finally:
            service.stopping()
            if control is not None:
                control.close()
            self._stop_workers(list(self.workers))
            self._restore_signals(previous)
            if self._pid is not None:
                self._pid.release()
            log.info("daemon stopped")

    def stop(self) -> None:
        """Stop after the rounds running now."""
        self._stopping.set()
        self._reload.set()

    def reload(self) -> None:
        """Read the configuration again: stop the workers of removed or changed sections,
        start the new ones."""
        try:
            config = load_config(self.config_file, self.plugins)
        except ConfigError as exc:
            log.error("configuration not reloaded, the running one is kept: %s", exc)
            return
        changed = [
            name
            for name, worker in self.workers.items()
            if config.sections.get(name) != worker.section or name not in self._names(config)
        ]
        self._stop_workers(changed)
        self.config = config
        self._start_workers(config)
        log.info("configuration reloaded: %s", ", ".join(self.workers) or "no section")

    def _names(self, config: Config) -> list[str]:
        if self.names is None:
            return list(config.sections)
        return [name for name in self.names if name in config.sections]

    def _start_workers(self, config: Config) -> None:
        for name in self._names(config):
            if name not in self.workers:
                section = config.section(name)
                worker = SectionWorker(config, section, self.plugins, self.on_round)
                if self.run_round is not None:
                    worker.run_round = self.run_round
                self.workers[name] = worker
                worker.start()

    def _stop_workers(self, names: list[str]) -> None:
        workers = [self.workers.pop(name) for name in names if name in self.workers]
        for worker in workers:
            worker.stop()
        deadline = time.monotonic() + STOP_TIMEOUT  # one wait for all: they stop together
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.warning("[%s] its round did not finish in time; abandoned", worker.name)

    def _install_signals(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signals reach the main thread only (tests run daemons in threads)

        def stop(signum: int, frame: Optional[FrameType]) -> None:
            log.info("signal %s: stopping", signal.Signals(signum).name)
            self.stop()

        def reload(signum: int, frame: Optional[FrameType]) -> None:
            self._reload.set()

        previous: dict[int, object] = {}
        for signum, handler in (
            (signal.SIGTERM, stop),
            (signal.SIGINT, stop),
            (signal.SIGHUP, reload),
        ):
            previous[signum] = signal.signal(signum, handler)
        return previous

    def _restore_signals(self, previous: dict[int, object]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
