"""Run one command and measure it: wall seconds, CPU seconds and peak RSS.

Peak RSS is ``VmHWM`` read from ``/proc/PID/status`` every ~2 ms while the child runs.
``ru_maxrss`` alone is no good: Linux carries the pre-exec peak of the forking process (the
benchmark itself) into the child's figure. It is used only where it exceeds the benchmark's
own peak, so it can only be the child's (this catches processes too short to be polled at
their peak, such as ``cp`` of a few files). CPU time comes from the child's own ``rusage``,
which ``os.wait4`` returns when it reaps the child (``Popen.poll`` would discard it).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

#: Seconds between two reads of /proc/PID/status.
POLL = 0.002

Command = Sequence[Union[str, Path]]


class BenchmarkError(Exception):
    """A run that cannot be measured: a command failed, or B differs from A."""


class CommandFailed(BenchmarkError):
    """A command exited with a non-zero status."""

    def __init__(self, command: Command, status: int, stderr: str) -> None:
        line = " ".join(str(part) for part in command)
        super().__init__(f"command failed with status {status}: {line}\n{stderr.rstrip()}")


@dataclass(frozen=True)
class Sample:
    """One measured run: wall and CPU (user + sys) seconds, peak RSS in KiB.

    Adding two samples gives the figures of running them one after the other: wall and CPU
    are summed, the peak RSS is the larger one.
    """

    wall: float
    cpu: float
    rss_kib: int

    def __add__(self, other: Sample) -> Sample:
        peak = max(self.rss_kib, other.rss_kib)
        return Sample(self.wall + other.wall, self.cpu + other.cpu, peak)


@dataclass(frozen=True)
class Summary:
    """Repetitions of one tool on one workload: median wall and CPU, largest peak RSS."""

    wall: float
    cpu: float
    rss_mib: float

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> Summary:
        """Medians of wall and CPU, maximum of the peak RSS (in MiB)."""
        return cls(
            statistics.median(s.wall for s in samples),
            statistics.median(s.cpu for s in samples),
            max(s.rss_kib for s in samples) / 1024,
        )


def vmhwm_kib(pid: int) -> int:
    """The ``VmHWM`` (peak resident set) of a live process in KiB, 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def measure(
    command: Command,
    *,
    cwd: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
) -> Sample:
    """Run ``command`` (stdout discarded) and return its :class:`Sample`.

    Every dirty page is written to disk first (``sync``, untimed): a tool that makes its
    writes durable (escale's ``syncfs``) must not pay for what the previous step left dirty.
    ``Popen`` returns once the child has exec'd, so every VmHWM read belongs to the new
    program. Raises :class:`CommandFailed` (with the end of stderr) on a non-zero exit.
    """
    os.sync()  # untimed: no tool pays for the writeback of the step before it
    with tempfile.TemporaryFile() as stderr:
        own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, vmhwm_kib(proc.pid))
            time.sleep(POLL)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode:
            stderr.seek(0)
            text = stderr.read()[-4000:].decode(errors="replace")
            raise CommandFailed(command, proc.returncode, text)
    if usage.ru_maxrss > own_peak:  # above what the fork inherited: the child's own peak
        peak = max(peak, usage.ru_maxrss)
    return Sample(wall, usage.ru_utime + usage.ru_stime, peak)


def run_untimed(
    command: Command,
    *,
    cwd: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
) -> str:
    """Run a set-up command outside any timing; return its stdout, raise on failure."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise CommandFailed(command, done.returncode, done.stderr[-4000:])
    return done.stdout
