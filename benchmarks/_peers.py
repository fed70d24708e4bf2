"""Unison and Syncthing as peers in run.py's table: the tools users compare escale with.

Neither has a passive relay, so each does what it can of A → relay → B:

* **unison** (two-replica sync): ``unison A R`` then ``unison R B``, R and B empty at the start,
  each run with ``-batch -auto -times`` (no question asked, modification times kept) and its
  archives in the run's own folder (``UNISON``), so no profile or archive of the user's is read.
  W4 (idle): a first ``unison A R`` untimed, then the same again with nothing changed.
* **syncthing** (peer-to-peer): two instances on 127.0.0.1 (``_daemon_syncthing``: loopback
  only, discovery, relays and reporting off), A shares its folder with B directly. Timed from
  the start of both processes until both are connected and idle with B holding every file of
  A (REST ``/rest/db/status`` and ``/rest/db/completion``), so it includes Syncthing's start-up
  and the initial scan of A; the instances are stopped by pid afterwards (untimed). CPU is the
  sum of both processes' user + system time, peak RSS the larger VmHWM of the two. Transfer
  workloads only: an idle Syncthing does not rescan on demand in a comparable way.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from _daemon_common import usage, wait_until
from _measure import Sample, measure, run_untimed
from _tools import RunDirs

UNISON_FLAGS = ["-batch", "-auto", "-times", "-silent", "-confirmbigdel=false", "-perms", "0"]
#: Seconds Syncthing may take to move one workload (W6: about 40 s at full size).
SYNCTHING_TIMEOUT = 900.0


def unison_env(dirs: RunDirs) -> dict[str, str]:
    """Unison's home (archives, log) inside the run's folder."""
    return {**os.environ, "UNISON": str(dirs.work / "unison-home")}


def unison(first: Path, second: Path) -> list[str]:
    """The command line of one unison run between two local folders."""
    return ["unison", str(first), str(second), *UNISON_FLAGS]


def unison_transfer(dirs: RunDirs) -> Sample:
    """``unison A R && unison R B``."""
    env = unison_env(dirs)
    return measure(unison(dirs.a, dirs.r), env=env) + measure(unison(dirs.r, dirs.b), env=env)


def unison_idle(dirs: RunDirs) -> Sample:
    """A first ``unison A R`` untimed, then a second one with nothing changed."""
    env = unison_env(dirs)
    run_untimed(unison(dirs.a, dirs.r), env=env)
    return measure(unison(dirs.a, dirs.r), env=env)


def _count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def syncthing_transfer(dirs: RunDirs) -> Sample:
    """Two Syncthing instances, A's folder shared with B: start to B complete."""
    from _daemon_syncthing import FOLDER_ID, Syncthing, all_idle, stop_all

    binary = shutil.which("syncthing") or "syncthing"
    instances = [
        Syncthing(binary, dirs.work / "syncthing-A", dirs.a),
        Syncthing(binary, dirs.work / "syncthing-B", dirs.b),
    ]
    for instance in instances:
        instance.generate()  # untimed: keys, config.xml, the .stfolder marker
    for instance in instances:
        instance.configure([peer for peer in instances if peer is not instance])
    expected = _count_files(dirs.a)  # .stfolder holds no file
    b = instances[1]
    os.sync()
    try:
        start = time.perf_counter()
        for instance in instances:
            instance.start()

        def done() -> bool:
            status = b.rest(f"/rest/db/status?folder={FOLDER_ID}") or {}
            return status.get("localFiles") == expected and all_idle(instances)

        wait_until(done, "Syncthing to copy A to B", SYNCTHING_TIMEOUT, step=0.05)
        wall = time.perf_counter() - start
        used = [usage(instance.pid) for instance in instances]
    finally:
        stop_all(instances)
    for instance in instances:
        shutil.rmtree(instance.home, ignore_errors=True)
    for marker in (dirs.a / ".stfolder", dirs.b / ".stfolder"):
        shutil.rmtree(marker, ignore_errors=True)  # so that diff -rq compares the data only
    cpu = sum(u.cpu for u in used)
    return Sample(wall, cpu, max(u.hwm_kib for u in used))
