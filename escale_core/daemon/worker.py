"""One section's worker: rounds on an adaptive pause, a back-off after errors, a status that
the daemon reports; a crash of its loop is logged and the loop starts again (``keep_alive``)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..config import Config, SectionConfig
from ..engine import RoundReport
from ..errors import EscaleError
from ..history import TimeQuotaController
from ..plugins import Plugins
from ..session import sync_section
from .triggers import ChangeWatcher, local_relay_folder, watch_available

log = logging.getLogger("escale")

#: the first pause after a failed round; it doubles up to the section's ``refresh``
FIRST_BACKOFF = 2.0


@dataclass
class SectionStatus:
    """What a worker is doing, for ``status`` and the log.

    :param state: ``idle``, ``syncing``, ``backing off``, ``paused`` or ``stopped``.
    :param failures: failed rounds since the last good one (the back-off grows with it).
    """

    section: str
    state: str = "idle"
    rounds: int = 0
    last_round: Optional[float] = None
    last_in_sync: Optional[bool] = None
    last_error: Optional[str] = None
    next_round: Optional[float] = None
    failures: int = 0
    failures_total: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


#: runs one round of a section (the daemon passes :func:`escale_core.session.sync_section`)
RoundRunner = Callable[[Config, SectionConfig, Plugins], RoundReport]


def _one_round(config: Config, section: SectionConfig, plugins: Plugins) -> RoundReport:
    return sync_section(config, section, plugins)


class SectionWorker(threading.Thread):
    """Keeps one section in sync until :meth:`stop`.

    :param on_round: called with the section's name and each round's report (the foreground
        command prints it).
    """

    def __init__(
        self,
        config: Config,
        section: SectionConfig,
        plugins: Plugins,
        on_round: Optional[Callable[[str, RoundReport], None]] = None,
        run_round: RoundRunner = _one_round,
    ) -> None:
        super().__init__(name=f"escale-{section.name}", daemon=True)
        self.config, self.section, self.plugins = config, section, plugins
        self.on_round, self.run_round = on_round, run_round
        self.status = SectionStatus(section.name)
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._pauses = TimeQuotaController(section.refresh)
        self._resumed = threading.Event()
        self._resumed.set()
        self._round_done = threading.Condition()
        self.watcher: Optional[ChangeWatcher] = None
        #: both sides announce their changes: the timer only catches what events missed
        self.event_driven = False

    def stop(self) -> None:
        """Ask the worker to stop after its current round."""
        self._halt.set()
        self._wake.set()
        if self.watcher is not None:
            self.watcher.stop()

    def _start_watching(self) -> None:
        """Follow the local folder's events (and a local relay folder's) when ``watch``."""
        section = self.section
        if not section.watch or not watch_available():
            return
        relay = local_relay_folder(section)
        folders = [section.path] + ([relay] if relay is not None else [])
        self.watcher = ChangeWatcher(section.name, folders, self.wake, relay)
        self.watcher.start()
        self.event_driven = relay is not None

    def wake(self) -> None:
        """Run a round now (a local change, or ``escale sync`` while the daemon runs)."""
        self._wake.set()

    def pause(self) -> None:
        """Start no round until :meth:`resume` (the one running finishes)."""
        self._resumed.clear()
        if self.status.state != "syncing":
            self.status.state = "paused"

    def resume(self) -> None:
        """Run rounds again, starting with one now (changes were held)."""
        if not self._resumed.is_set():
            self.status.state = "idle"
            self._resumed.set()
            self._wake.set()

    def round_now(self, timeout: float) -> bool:
        """Run a round now and wait for it to end (``escale sync`` while the daemon runs);
        False if paused, or not done within ``timeout`` seconds."""
        if not self._resumed.is_set():
            return False
        with self._round_done:
            done = self.status.rounds + self.status.failures_total
            self._wake.set()
            return self._round_done.wait_for(
                lambda: self.status.rounds + self.status.failures_total > done, timeout
            )

    def run(self) -> None:
        """Rounds until stopped; a crash of the loop itself is logged and the loop restarts."""
        while not self._halt.is_set():
            try:
                self._loop()
            except Exception:  # keep_alive: one section's bug never stops the daemon
                log.exception("[%s] the worker crashed; it restarts", self.section.name)
                self._sleep(FIRST_BACKOFF)
        self.status.state = "stopped"

    def _loop(self) -> None:
        while not self._halt.is_set():
            if not self._resumed.is_set():  # paused: wait for resume (or stop)
                self._wake.wait()
                self._wake.clear()
                continue
            pause = self._round()
            if not self._resumed.is_set():
                self.status.state = "paused"
            with self._round_done:
                self._round_done.notify_all()
            if self.watcher is None and self.status.rounds:  # the folders exist now
                self._start_watching()
                pause = self._pause_after(pause)
            self.status.next_round = time.time() + pause
            self._sleep(pause)

    def _round(self) -> float:
        """One round; return the pause before the next one."""
        status = self.status
        status.state = "syncing"
        try:
            report = self.run_round(self.config, self.section, self.plugins)
        except EscaleError as exc:
            status.failures += 1
            status.failures_total += 1
            status.last_error, status.last_in_sync = str(exc), False
            status.state = "backing off"
            pause = min(FIRST_BACKOFF * 2.0 ** (status.failures - 1), float(self.section.refresh))
            log.error("%s (next try in %.0f s)", exc, pause)
            return pause
        status.failures, status.rounds, status.last_round = 0, status.rounds + 1, time.time()
        status.last_in_sync = report.in_sync
        status.last_error = report.errors[-1] if report.errors else None
        status.summary = report.counts()
        status.state = "idle"
        if report.transferred or report.errors:
            log.info(
                "[%s] pushed %d, pulled %d, deleted %d remote / %d local, %d conflict(s); %s",
                self.section.name, len(report.pushed), len(report.pulled),
                len(report.deleted_remote), len(report.deleted_local), len(report.conflicts),
                "in sync" if report.in_sync else "NOT in sync",
            )  # fmt: skip
        if self.on_round is not None:
            self.on_round(self.section.name, report)
        self._pauses.record(report.transferred)
        return self._pause_after(self._pauses.pause())

    def _pause_after(self, pause: float) -> float:
        """``pause``, or ``rescan_interval`` when events announce both sides' changes."""
        if self.event_driven and self.watcher is not None and self.watcher.is_alive():
            return self.section.rescan_interval
        return pause

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when woken or stopped."""
        self._wake.wait(seconds)
        self._wake.clear()
