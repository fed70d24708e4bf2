"""The daemon benchmarks themselves: propagation latency A → B and the idle cost of a daemon
watching a big tree, for escale (per relay) and for Syncthing.

Every process started here (escale daemons, test servers, Syncthing instances) is stopped by
pid in a ``finally``, so an error or Ctrl-C leaves nothing running.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from _daemon_common import IdleCost, Series, latency_sample, measure_idle, wait_until
from _daemon_escale import EscaleClient, make_pair, start_daemons
from _daemon_syncthing import Syncthing, all_idle, make_instances, start_all, stop_all
from _measure import BenchmarkError, run_untimed
from _servers import section_extra
from _servers import start as start_server
from _workloads import make_tiny

#: escale's latency goals on the median, in seconds (network: ``refresh`` after idle).
LOCAL_GOAL, ACTIVE_GOAL = 1.0, 2.0


@dataclass(frozen=True)
class Plan:
    """What to run, from the command line.

    :param refresh: the network relays' ``refresh`` in the latency runs.
    :param idle_wait: quiet seconds before each "after idle" network sample.
    :param settle: seconds after an arrival before the next idle-checked sample.
    :param idle_seconds: length of the idle-cost window.
    :param syncthing: the Syncthing binary, ``None`` when it is not installed.
    """

    samples: int
    refresh: float
    idle_wait: float
    settle: float
    files: int
    idle_seconds: float
    syncthing: Optional[str]

    @property
    def timeout(self) -> float:
        """The longest a sample may take before the run fails."""
        return 60 + 3 * max(self.refresh, self.idle_wait)


@contextlib.contextmanager
def relay(kind: str, base: Path, refresh: Optional[float]) -> Iterator[tuple[str, str]]:
    """``(relay URL, extra section lines)`` for a ``file``, ``sftp`` or ``webdav`` relay; a
    test server is started for the network ones (stopped at the end). ``refresh`` is set on
    network relays only (``None``: escale's default)."""
    if kind == "file":
        yield f"file://{base / 'relay'}", ""
        return
    server = start_server(kind, base / f"server-{kind}")
    try:
        extra = "" if refresh is None else f"refresh = {refresh:g}\n"
        yield server.url("bench"), extra + section_extra(server)
    finally:
        server.server.stop()


def sample_series(
    series: Series,
    folders: tuple[Path, Path],
    staging: Path,
    count: int,
    before: Callable[[], None],
    timeout: float,
) -> Series:
    """``count`` samples from ``folders[0]`` to ``folders[1]``, ``before()`` ahead of each."""
    prefix = f"{series.tool}-{series.relay}-{len(series.condition)}"
    for index in range(count):
        before()
        name = f"{prefix}-{index:03d}.bin"
        series.seconds.append(latency_sample(*folders, staging, name, timeout))
    return series


def escale_latency(kind: str, base: Path, plan: Plan) -> list[Series]:
    """Two escale daemons on one relay: after idle (and right after activity on a network
    relay), A → B."""
    base.mkdir(parents=True)
    staging = base / "staging"
    staging.mkdir()
    with relay(kind, base, None if kind == "file" else plan.refresh) as (url, extra):
        clients = make_pair(base, url, extra)
        try:
            start_daemons(clients, plan.timeout)
            return escale_series(kind, clients, staging, plan)
        except BenchmarkError as exc:  # the daemons' view, before their folders are deleted
            raise BenchmarkError(f"{exc}\n{diagnosis(clients)}") from exc
        finally:
            for client in clients:
                client.stop()


def diagnosis(clients: list[EscaleClient], lines: int = 25) -> str:
    """Each daemon's status and the end of its log, for a run that failed."""
    parts = []
    for client in clients:
        log = client.state / "escale.log"
        tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
        parts.append(f"{client.name}: status {client.daemon_status()}")
        parts += [f"  {line}" for line in tail]
    return "\n".join(parts)


def escale_series(
    kind: str, clients: list[EscaleClient], staging: Path, plan: Plan
) -> list[Series]:
    """The series of one relay, on running daemons: one for a ``file`` relay (events on both
    sides), "after idle" then "right after activity" for a network relay (polled)."""
    folders = (clients[0].folder, clients[1].folder)
    # seeded: two runs wait the same (random-looking) times
    jitter = random.Random(7)

    def settled(wait: float, spread: float = 0.0) -> Callable[[], None]:
        def before() -> None:
            time.sleep(wait + jitter.uniform(0, spread))
            wait_until(lambda: all(c.idle() for c in clients), "idle", plan.timeout)

        return before

    if kind == "file":
        idle = Series("escale", kind, f"{plan.settle:g} s after the last arrival, both idle")
        idle.goal = LOCAL_GOAL
        before = settled(plan.settle)
        return [sample_series(idle, folders, staging, plan.samples, before, plan.timeout)]
    # The pauses between relay checks follow a fixed schedule after activity: a fixed wait
    # would land every sample at the same point of B's pause (a constant, not a spread), so
    # a random part as long as ``refresh`` is added.
    quiet = f"{plan.idle_wait:g} s + uniform 0–{plan.refresh:g} s"
    idle = Series("escale", kind, f"after idle: {quiet} quiet, both idle", plan.refresh)
    active = Series("escale", kind, "right after activity (the previous arrival)", ACTIVE_GOAL)
    before = settled(plan.idle_wait, plan.refresh)
    sample_series(idle, folders, staging, plan.samples, before, plan.timeout)
    sample_series(active, folders, staging, plan.samples, lambda: None, plan.timeout)
    return [idle, active]


def syncthing_latency(base: Path, plan: Plan) -> Series:
    """Two Syncthing instances connected on loopback, A → B, each sample after both idle."""
    assert plan.syncthing is not None
    base.mkdir(parents=True)
    staging = base / "staging"
    staging.mkdir()
    instances = make_instances(plan.syncthing, base, ["A", "B"])
    try:
        start_all(instances, 300)

        def before() -> None:
            time.sleep(plan.settle)
            wait_until(lambda: all_idle(instances), "Syncthing idle", plan.timeout)

        series = Series(
            "syncthing", "direct", f"{plan.settle:g} s after the last arrival, both idle"
        )
        folders = (instances[0].folder, instances[1].folder)
        return sample_series(series, folders, staging, plan.samples, before, plan.timeout)
    finally:
        stop_all(instances)


def make_tree(root: Path, files: int) -> None:
    """``files`` files of 1–100 bytes, 100 per folder (W4's tree), flushed to disk."""
    make_tiny(root, files, max(1, files // 100), seed=4)
    os.sync()


def settle_rounds(client: EscaleClient, quiet: float) -> float:
    """Wait until ``client``'s daemon is idle and runs no round for ``quiet`` seconds; return
    the seconds waited, less the last quiet period (the initial sync was over then).

    A round that wrote to the relay wakes its own daemon once more (its own write is news to
    its watcher or relay check): that round belongs to the initial sync, not to the window.
    """
    start = time.monotonic()
    while True:
        rounds = (client.daemon_status() or {}).get("rounds")
        time.sleep(quiet)
        if client.idle() and (client.daemon_status() or {}).get("rounds") == rounds:
            return time.monotonic() - start - quiet


def escale_idle(kind: str, base: Path, plan: Plan) -> IdleCost:
    """One escale daemon over a tree of ``plan.files`` files: its first round (the initial
    sync, timed apart), then the idle window."""
    base.mkdir(parents=True)
    try:
        with relay(kind, base, None) as (url, extra):
            client = EscaleClient("A", base / "A", url, extra)
            client.write_config()
            make_tree(client.folder, plan.files)
            try:
                initial = start_daemons([client], 3600) + settle_rounds(client, 5.0)
                before = client.daemon_status() or {}
                assert client.pid is not None
                wall, cpu, peak, peak_all = measure_idle(client.pid, plan.idle_seconds)
                after = client.daemon_status() or {}
            finally:
                client.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rounds = after.get("rounds", 0) - before.get("rounds", 0)
    checks = after.get("checks", 0) - before.get("checks", 0)
    note = f"{rounds} round(s), {checks} relay check(s) in the window"
    return IdleCost("escale", kind, plan.files, initial, wall, cpu, peak, peak_all, note)


def syncthing_idle(base: Path, plan: Plan) -> IdleCost:
    """Two connected Syncthing instances, both started on a copy of the same tree (so the
    initial sync is their scans and an index exchange); instance A is measured."""
    assert plan.syncthing is not None
    base.mkdir(parents=True)
    instances: list[Syncthing] = []
    try:
        instances = make_instances(plan.syncthing, base, ["A", "B"])
        make_tree(instances[0].folder, plan.files)
        shutil.rmtree(instances[1].folder)
        run_untimed(["cp", "-a", instances[0].folder, instances[1].folder])
        os.sync()
        initial = start_all(instances, 3600)
        wall, cpu, peak, peak_all = measure_idle(instances[0].pid, plan.idle_seconds)
    finally:
        stop_all(instances)
        shutil.rmtree(base, ignore_errors=True)
    note = "A of two connected instances, both started on the same tree (cp -a)"
    return IdleCost("syncthing", "direct", plan.files, initial, wall, cpu, peak, peak_all, note)
