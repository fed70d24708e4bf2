"""escale beside ``cp -r`` ×2 on one machine, in one run: wall time and peak memory.

Usage::

    python benchmarks/compare.py [--quick] [--repeat N] [--workdir DIR]

Workloads (all A → relay → B through a ``file://`` relay, aes-256-gcm, pullers 1):
``small``: 10,000 files × 4 KiB in 100 folders; ``big``: one 1 GiB file. ``--quick`` divides the
sizes by ten. Each repetition runs in fresh folders (this machine re-creates just-deleted files
slowly, see shared/notes/perf-baselines.md), the baseline and escale alternating. Timings are
medians; peak RSS is the largest of the escale processes (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ESCALE = [sys.executable, "-m", "escale_core"]


def make_small(root: Path, files: int) -> None:
    """``files`` random 4 KiB files in 100 folders."""
    rng = __import__("random").Random(1)
    for i in range(files):
        folder = root / f"d{i % 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}").write_bytes(rng.randbytes(4096))


def make_big(root: Path, mib: int) -> None:
    """One random file of ``mib`` MiB."""
    root.mkdir(parents=True, exist_ok=True)
    rng = __import__("random").Random(2)
    with open(root / "big.bin", "wb") as out:
        for _ in range(mib):
            out.write(rng.randbytes(1 << 20))


def run(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB, VmHWM read while it runs) of one child process.

    ``ru_maxrss`` would include the peak of the benchmark process itself, which a child
    inherits across fork and exec.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"failed: {' '.join(command)}\n{err}")
    return elapsed, peak


def cp_twice(source: Path, work: Path) -> float:
    """``cp -r A R && cp -r R B``."""
    t1, _ = run(["cp", "-r", str(source), str(work / "R")])
    t2, _ = run(["cp", "-r", str(work / "R"), str(work / "B")])
    return t1 + t2


def escale_twice(source: Path, work: Path) -> tuple[float, int]:
    """escale sync on A (push), then on B (pull); A is a copy of the source made beforehand."""
    key = work / "key"
    key.write_text("benchmark passphrase\n")
    for name in ("A", "B"):
        (work / f"{name}.toml").write_text(
            f'state_dir = "{work / ("state" + name)}"\n[s]\npath = "{work / name}"\n'
            f'relay = "{work / "relay"}"\nclient = "{name}"\npassphrase_file = "{key}"\n'
        )
    shutil.copytree(source, work / "A")
    t1, m1 = run([*ESCALE, "-c", str(work / "A.toml"), "-q", "sync", "s"])
    t2, m2 = run([*ESCALE, "-c", str(work / "B.toml"), "-q", "sync", "s"])
    if subprocess.run(["diff", "-rq", str(work / "A"), str(work / "B")]).returncode:
        raise SystemExit("escale: A and B differ")
    return t1 + t2, max(m1, m2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="escale-bench-", dir=args.workdir))
    subprocess.run(["chattr", "+T", str(base)], stderr=subprocess.DEVNULL)
    scale = 10 if args.quick else 1
    small, big = 10_000 // scale, 1024 // scale
    workloads = {
        f"small: {small:,} x 4 KiB": (make_small, small),
        f"big: one {big} MiB file": (make_big, big),
    }
    print("| workload | cp -r x2 (s) | escale push+pull (s) | ratio | escale peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    try:
        for label, (make, size) in workloads.items():
            source = base / f"src-{make.__name__}"
            make(source, size)
            cps, escales, peaks = [], [], []
            for i in range(args.repeat):
                work = base / f"{make.__name__}-{i}"
                (work / "cp").mkdir(parents=True)
                (work / "escale").mkdir()
                cps.append(cp_twice(source, work / "cp"))
                elapsed, peak = escale_twice(source, work / "escale")
                escales.append(elapsed)
                peaks.append(peak)
            cp_median, escale_median = statistics.median(cps), statistics.median(escales)
            print(
                f"| {label} | {cp_median:.2f} | {escale_median:.2f} | "
                f"{escale_median / cp_median:.1f} | {max(peaks) / 1024:.0f} |",
                flush=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
