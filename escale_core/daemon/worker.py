"""One section's worker: rounds when something changed, cheap relay checks in between, a
back-off after errors, a status that the daemon reports; a crash of its loop is logged and
the loop starts again (``keep_alive``).

When a round runs:

- at the start, and whenever the local folder changes (file-system events), or the relay
  folder when it is a local folder or a mount (events too);
- when ``escale sync`` asks the daemon, or ``resume`` lets held changes go;
- when a *relay check* finds the relay changed: a network relay is checked (one listing and
  the client states, :mod:`.relaywatch`) on the adaptive pauses of a
  :class:`~escale_core.history.TimeQuotaController`: 1 s right after a transfer, growing to
  the section's ``refresh`` when idle;
- every ``rescan_interval``, to catch what events missed;
- on every timer tick when the local folder's events cannot be followed (``watch = false``,
  no ``watchfiles``): only a scan finds local changes then.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from ..config import Config, SectionConfig
from ..engine import RoundReport
from ..errors import EscaleError, RoundAbandoned
from ..history import TimeQuotaController
from ..plugins import Plugins
from ..session import sync_section
from .relaywatch import RelayWatch
from .triggers import ChangeWatcher, local_relay_folder, watch_available

log = logging.getLogger("escale")

#: the first pause after a failed round; it doubles up to the section's ``refresh``
FIRST_BACKOFF = 2.0
#: the pause before checking a network relay again right after a transfer
POLL_AFTER_ACTIVITY = 1.0
#: a section whose relay is only checked still runs a full round this often (seconds): a
#: safety net while an intermittent missed change over WebDAV is investigated (issue 11 note)
CHECKED_RESCAN = 300.0
#: the round after the watch starts runs this many seconds later (the watch is set up by then)
WATCH_SETTLE = 1.0
#: the transfer rate is measured over this many seconds
RATE_WINDOW = 5.0


@dataclass
class Transfer:
    """Data moving in the current round.

    :param phase: ``pushing`` or ``pulling``.
    :param bytes: moved so far in this round.
    :param rate: bytes per second over the last few seconds.
    """

    phase: str
    bytes: int = 0
    rate: float = 0.0
    started: float = field(default_factory=time.time)


@dataclass
class SectionStatus:
    """What a worker is doing, for ``status`` and the log.

    :param state: ``idle``, ``checking`` (the relay), ``scanning``, ``pushing``,
        ``pulling``, ``backing off``, ``paused`` or ``stopped``.
    :param failures: failed rounds since the last good one (the back-off grows with it).
    :param checks: relay checks that found nothing new (no round needed).
    :param transfer: the data moving now, if any.
    """

    section: str
    state: str = "idle"
    rounds: int = 0
    checks: int = 0
    last_round: Optional[float] = None
    last_in_sync: Optional[bool] = None
    last_error: Optional[str] = None
    next_round: Optional[float] = None
    failures: int = 0
    failures_total: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    transfer: Optional[Transfer] = None


class RoundRunner(Protocol):
    """Runs one round of a section (the daemon runs :func:`escale_core.session.sync_section`).

    ``progress`` and ``phase`` report the round as it goes; either may raise
    :class:`RoundAbandoned` to stop it (``escale stop``)."""

    def __call__(
        self,
        config: Config,
        section: SectionConfig,
        plugins: Plugins,
        *,
        progress: Callable[[int], None],
        phase: Callable[[str], None],
    ) -> RoundReport: ...


def _one_round(
    config: Config,
    section: SectionConfig,
    plugins: Plugins,
    *,
    progress: Callable[[int], None],
    phase: Callable[[str], None],
) -> RoundReport:
    return sync_section(config, section, plugins, progress=progress, phase=phase)


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
        self.relay_watch = RelayWatch(section, plugins)
        self._changed = True  # something to sync may be there: the first round runs
        self._seen: Optional[str] = None  # the relay's fingerprint the last round saw
        self._last_scan = -float("inf")  # when the last good round started (monotonic)
        self._moved: collections.deque[tuple[float, int]] = collections.deque()

    # -- control (called from other threads) ----------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop: a round abandons the object it is moving."""
        self._halt.set()
        self._wake.set()
        if self.watcher is not None:
            self.watcher.stop()

    def wake(self) -> None:
        """Run a round now (a local change, or ``escale sync`` while the daemon runs)."""
        self._changed = True
        self._wake.set()

    def pause(self) -> None:
        """Start no round until :meth:`resume` (the one running finishes)."""
        self._resumed.clear()
        if self.status.state in ("idle", "backing off", "checking"):
            self.status.state = "paused"

    def resume(self) -> None:
        """Run rounds again, starting with one now (changes were held)."""
        if not self._resumed.is_set():
            self.status.state = "idle"
            self._resumed.set()
            self.wake()

    def round_now(self, timeout: float) -> bool:
        """Run a round now and wait for it to end (``escale sync`` while the daemon runs);
        False if paused, or not done within ``timeout`` seconds."""
        if not self._resumed.is_set():
            return False
        with self._round_done:
            done = self.status.rounds + self.status.failures_total
            self.wake()
            return self._round_done.wait_for(
                lambda: self.status.rounds + self.status.failures_total > done, timeout
            )

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Rounds until stopped; a crash of the loop itself is logged and the loop restarts."""
        while not self._halt.is_set():
            try:
                self._loop()
            except Exception:  # keep_alive: one section's bug never stops the daemon
                log.exception("[%s] the worker crashed; it restarts", self.section.name)
                self._seen = None
                self._sleep(FIRST_BACKOFF)
        self.relay_watch.close()
        self.status.state = "stopped"

    def _loop(self) -> None:
        while not self._halt.is_set():
            if not self._resumed.is_set():  # paused: wait for resume (or stop)
                self._wake.wait()
                self._wake.clear()
                continue
            pause = self._round() if self._round_due() else self._check_relay()
            if not self._resumed.is_set():
                self.status.state = "paused"
            if self.watcher is None and self.status.rounds:  # the folders exist now
                self._start_watching()
                if self.watcher is not None:
                    # what changed between the round and the watch is in no event: one more
                    # round once the watch has surely begun
                    self._changed, pause = True, min(pause, WATCH_SETTLE)
            self.status.next_round = time.time() + pause
            self._sleep(pause)

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
        # only the relay is listed between rounds now: it may be listed soon after activity
        self._pauses.shortest = min(POLL_AFTER_ACTIVITY, self._pauses.refresh)

    def _watching(self) -> bool:
        return self.watcher is not None and self.watcher.is_alive()

    def _round_due(self) -> bool:
        """Whether a round must run now, rather than a relay check."""
        if self.event_driven and self._watching():
            return True  # woken by an event, or by the rescan timer
        return (
            self._changed
            or self._seen is None
            or not self._watching()  # local changes are found by scanning only
            or time.monotonic() - self._last_scan
            >= min(self.section.rescan_interval, CHECKED_RESCAN)
        )

    def _check_relay(self) -> float:
        """Check whether the relay changed since the last round; return the pause before the
        next check (none when a round must run)."""
        self.status.state = "checking"
        seen = self.relay_watch.fingerprint()
        if seen is None or seen != self._seen:
            self._changed = True
            return 0.0
        self.status.checks += 1
        self.status.state = "idle"
        self._pauses.record(False)
        return self._pause_after(self._pauses.pause())

    def _round(self) -> float:
        """One round; return the pause before the next one."""
        status = self.status
        status.state, self._changed = "scanning", False  # events from now on: another round
        started = time.monotonic()
        # taken before the round: whatever changes on the relay during it is seen as new
        checks = self._watching() and not self.event_driven  # (rounds on events otherwise)
        seen = self.relay_watch.fingerprint() if checks else None
        self._moved.clear()
        try:
            report = self.run_round(
                self.config, self.section, self.plugins, progress=self._progress, phase=self._phase
            )
        except RoundAbandoned:
            log.info("[%s] round stopped: what was moving is abandoned", self.section.name)
            self._seen = None
            return 0.0
        except EscaleError as exc:
            return self._failed(exc)
        finally:
            status.transfer = None
        self._seen, self._last_scan = seen, started
        self._succeeded(report)
        return self._pause_after(self._pauses.pause())

    def _failed(self, exc: EscaleError) -> float:
        """Record a failed round; return the back-off pause."""
        status = self.status
        status.failures += 1
        status.failures_total += 1
        status.last_error, status.last_in_sync = str(exc), False
        status.state = "backing off"
        self._seen = None
        pause = min(FIRST_BACKOFF * 2.0 ** (status.failures - 1), float(self.section.refresh))
        log.error("%s (next try in %.0f s)", exc, pause)
        self._notify_round()
        return pause

    def _succeeded(self, report: RoundReport) -> None:
        """Record a round's report, log what moved and tell whoever waits for it."""
        status = self.status
        status.failures, status.rounds, status.last_round = 0, status.rounds + 1, time.time()
        status.last_in_sync = report.in_sync
        status.last_error = report.errors[-1] if report.errors else None
        status.summary = report.counts()
        status.state = "idle"
        if not report.in_sync:  # something waits (quota, pullers, an error): try again
            self._seen = None
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
        self._notify_round()

    def _notify_round(self) -> None:
        with self._round_done:
            self._round_done.notify_all()

    # -- a round's progress (called from the round) ----------------------------------------

    def _phase(self, name: str) -> None:
        """The round moved on to ``name``; a stop asked meanwhile ends it here."""
        self._abandon_if_stopping()
        self.status.state = name
        if name in ("pushing", "pulling"):
            self.status.transfer = Transfer(name)
            self._moved.clear()

    def _progress(self, count: int) -> None:
        """``count`` more bytes moved; a stop asked meanwhile abandons the object."""
        self._abandon_if_stopping()
        transfer = self.status.transfer
        if transfer is None:
            return
        transfer.bytes += count
        now = time.monotonic()
        self._moved.append((now, transfer.bytes))
        while self._moved and now - self._moved[0][0] > RATE_WINDOW:
            self._moved.popleft()
        first_time, first_bytes = self._moved[0]
        if now > first_time:
            transfer.rate = (transfer.bytes - first_bytes) / (now - first_time)

    def _abandon_if_stopping(self) -> None:
        if self._halt.is_set():
            raise RoundAbandoned(f"[{self.section.name}] stopped by request")

    # -- pauses ----------------------------------------------------------------------------

    def _pause_after(self, pause: float) -> float:
        """``pause``, or ``rescan_interval`` when events announce both sides' changes."""
        if self.event_driven and self._watching():
            return self.section.rescan_interval
        return pause

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when woken or stopped."""
        self._wake.wait(seconds)
        self._wake.clear()
