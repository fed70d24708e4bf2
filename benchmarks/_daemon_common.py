"""What the daemon benchmarks share: waiting, latency samples, series statistics and the
CPU and memory of a running process tree, read from ``/proc``.

A latency sample writes a new file of random bytes into one side's folder in one step (written
under a temporary name outside the folder, then ``os.replace``d in, so no program ever sees a
partial file) and polls the other side's copy every 10 ms until it is byte-identical.
"""

from __future__ import annotations

import hashlib
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from _measure import BenchmarkError

#: Size of each latency sample's file.
PAYLOAD = 100 * 1024
#: Seconds between two looks at the receiving side's copy.
POLL = 0.01
#: Clock ticks per second of /proc/PID/stat's times.
TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


#: Variables that would send escale elsewhere (another configuration or state folder), or
#: loopback traffic through a proxy.
UNWANTED_ENV = (
    "ESCALE_CONFIG",
    "ESCALE_STATE_DIR",
    "ESCALE_DEBUG",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without :data:`UNWANTED_ENV`, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if key not in UNWANTED_ENV}
    return {**env, **extra}


def wait_until(condition: Callable[[], bool], what: str, timeout: float, step: float = 0.2) -> None:
    """Return once ``condition()`` is true; raise :class:`BenchmarkError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(step)


def _same(path: Path, size: int, digest: bytes) -> bool:
    """Whether ``path`` holds exactly the ``size`` bytes hashing to ``digest``."""
    try:
        if path.stat().st_size != size:
            return False
        return hashlib.sha256(path.read_bytes()).digest() == digest
    except OSError:  # not there yet, or replaced while read
        return False


def latency_sample(source: Path, target: Path, staging: Path, name: str, timeout: float) -> float:
    """Seconds from ``name`` appearing complete in ``source`` until ``target`` has it.

    ``staging`` must be on the same filesystem as ``source`` (``os.replace`` is a rename) and
    outside it, so the daemon sees one finished file, never one being written.
    """
    data = os.urandom(PAYLOAD)
    digest = hashlib.sha256(data).digest()
    staged = staging / name
    staged.write_bytes(data)
    arrived = target / name
    start = time.perf_counter()
    os.replace(staged, source / name)
    while True:
        now = time.perf_counter()
        if _same(arrived, len(data), digest):
            return now - start
        if now - start > timeout:
            raise BenchmarkError(f"{name} did not reach {target} within {timeout:.0f} s")
        time.sleep(POLL)


@dataclass
class Series:
    """Latency samples of one tool on one relay in one condition.

    :param tool: ``escale`` or ``syncthing``.
    :param relay: the relay (``file``, ``sftp``, ``webdav``) or ``direct`` for Syncthing.
    :param condition: what came before each sample, in words (the table says it).
    :param goal: escale's goal on the median, in seconds (``None``: none).
    """

    tool: str
    relay: str
    condition: str
    goal: Optional[float] = None
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p90(self) -> float:
        """The 90th percentile, nearest rank (the largest of fewer than 10 samples' top 10 %)."""
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system, children included) and memory of a process tree now."""

    cpu: float
    hwm_kib: int
    rss_kib: int


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (Syncthing may run a monitor and a child)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [pid], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _status_kib(pid: int, key: bytes) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def usage(pid: int) -> Usage:
    """The tree's utime + stime + cutime + cstime, and the sums of its VmHWM and VmRSS."""
    cpu, hwm, rss = 0.0, 0, 0
    for member in descendants(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): utime..cstime are fields 14..17
        cpu += sum(int(value) for value in fields[11:15]) / TICKS
        hwm += _status_kib(member, b"VmHWM:")
        rss += _status_kib(member, b"VmRSS:")
    return Usage(cpu, hwm, rss)


def reset_peak(pid: int) -> bool:
    """Reset the VmHWM of the tree to its current RSS (``clear_refs`` 5, Linux ≥ 4.0), so the
    peak read later is the idle window's, not the initial sync's. False where refused."""
    done = True
    for member in descendants(pid):
        try:
            Path(f"/proc/{member}/clear_refs").write_text("5")
        except OSError:
            done = False
    return done


@dataclass(frozen=True)
class IdleCost:
    """One daemon watching a tree, measured over an idle window.

    :param initial: seconds from start until its first sync (or scan) was done.
    :param peak_mib: peak RSS during the window (VmHWM after a reset; else the largest VmRSS
        seen every few seconds).
    :param peak_all_mib: peak RSS since the process started (initial sync included).
    """

    tool: str
    relay: str
    files: int
    initial: float
    wall: float
    cpu: float
    peak_mib: float
    peak_all_mib: float
    note: str = ""

    @property
    def percent(self) -> float:
        """CPU as a percentage of one core over the window."""
        return self.cpu / self.wall * 100 if self.wall else 0.0


def measure_idle(pid: int, seconds: float, step: float = 5.0) -> tuple[float, float, float, float]:
    """Watch ``pid``'s tree for ``seconds``: return (wall, CPU seconds, peak MiB in the window,
    peak MiB since start). Nothing else runs meanwhile (no status request, no REST call)."""
    before = usage(pid)
    peak_all = before.hwm_kib
    reset = reset_peak(pid)
    start = time.monotonic()
    largest = usage(pid).rss_kib
    while (left := seconds - (time.monotonic() - start)) > 0:
        time.sleep(min(step, left))
        largest = max(largest, usage(pid).rss_kib)
    after = usage(pid)
    wall = time.monotonic() - start
    peak = after.hwm_kib if reset else largest
    return wall, after.cpu - before.cpu, peak / 1024, max(peak_all, after.hwm_kib) / 1024


def ensure_watches(needed: int, notes: list[str]) -> None:
    """Raise ``fs.inotify.max_user_watches`` to ``needed`` when lower and we are root."""
    path = Path("/proc/sys/fs/inotify/max_user_watches")
    try:
        current = int(path.read_text())
    except (OSError, ValueError):
        return
    if current >= needed:
        notes.append(f"fs.inotify.max_user_watches = {current:,} (enough; not changed).")
        return
    try:
        path.write_text(str(needed))
        notes.append(f"fs.inotify.max_user_watches raised from {current:,} to {needed:,} (root).")
    except OSError:
        notes.append(
            f"fs.inotify.max_user_watches is {current:,}, below the {needed:,} needed, and could "
            "not be raised (not root): a watcher may fall back to rescans."
        )
