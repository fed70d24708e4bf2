"""escale at 10,000, 100,000 and 1,000,000 files: time, memory and state per file as the tree grows.

Usage::

    python benchmarks/scale.py [--counts 10000,100000,1000000] [--workdir DIR] [--output FILE.md]

For each count, in fresh folders under a ``chattr +T`` base: a tree of files of 1–100 bytes
(one folder per 100 files) in A, then the first push (client A into an empty ``file://``
relay), the first pull (client B into an empty folder; B is then checked equal to A, untimed),
an idle round (A again, nothing changed), ``find A -printf '%s %T@\\n'`` and
``cp -r A R && cp -r R B``, each after ``os.sync()``. Then the state and relay sizes, bytes per
file, and how each figure grows from one count to the next. Each count's folders are deleted
before the next one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the _*.py helpers beside this file

from _measure import BenchmarkError, Sample, measure, run_untimed
from _report import header
from _tools import RunDirs, escale_config, escale_sync, verify
from _workloads import make_tiny
from run import compile_escale, make_base

DEFAULT_COUNTS = "10000,100000,1000000"
FILES_PER_FOLDER = 100
#: escale's goal: peak RSS above an idle 10-file sync, per file (Syncthing: ~2.6 KB per item).
GOAL_BYTES_PER_FILE = 300
STEPS = ("first push", "first pull", "idle round", "find", "cp -r A R && cp -r R B")
ESCALE_STEPS = STEPS[:3]
#: Disk a file of 1–100 bytes takes (one 4 KiB block and its inode), times the copies a count
#: holds at once (A, B, cp's R and B) plus a margin for the relay and the state.
DISK_PER_FILE = 4096 * 5


@dataclass
class CountResult:
    """The figures of one count: a sample per step, the state and relay sizes in bytes."""

    files: int
    folders: int
    generate_s: float = 0.0
    steps: dict[str, Sample] = field(default_factory=dict)
    state_bytes: int = 0
    relay_bytes: int = 0
    relay_end_bytes: int = 0


def tree_bytes(root: Path) -> int:
    """The summed size of every file under ``root`` (0 if it does not exist)."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


def timed(command: list[str]) -> Sample:
    """``os.sync()`` (earlier steps' dirty pages are not this step's cost), then measure."""
    os.sync()
    return measure(command)


def baseline_rss_kib(base: Path) -> int:
    """The smallest peak RSS of 3 idle syncs of a 10-file folder: escale's fixed memory."""
    dirs = RunDirs(base / "baseline" / "A", base / "baseline")
    dirs.work.mkdir()
    make_tiny(dirs.a, 10, 1, seed=4)
    config = escale_config(dirs, "A", str(dirs.r))
    run_untimed(escale_sync(config))
    peak = min(measure(escale_sync(config)).rss_kib for _ in range(3))
    shutil.rmtree(dirs.work)
    return peak


def check_disk(base: Path, files: int) -> Optional[str]:
    """Why ``files`` files would not fit under ``base`` (space or inodes), or None."""
    stat = os.statvfs(base)
    free, inodes = stat.f_bavail * stat.f_frsize, stat.f_favail
    need = files * DISK_PER_FILE
    if free < need or inodes < files * 5:
        return (
            f"{files:,} files need about {need / 2**30:.1f} GiB and {files * 5:,} inodes; "
            f"free: {free / 2**30:.1f} GiB, {inodes:,} inodes"
        )
    return None


def run_escale(dirs: RunDirs, result: CountResult) -> None:
    """First push, first pull (then B == A, untimed), and the idle round."""
    dirs.b.mkdir()
    push = escale_config(dirs, "A", str(dirs.r))
    pull = escale_config(dirs, "B", str(dirs.r))
    result.steps["first push"] = timed(escale_sync(push))
    result.relay_bytes = tree_bytes(dirs.r)  # once every client has the data, it is deleted
    result.steps["first pull"] = timed(escale_sync(pull))
    verify(dirs.a, dirs.b)
    result.steps["idle round"] = timed(escale_sync(push))
    result.state_bytes = tree_bytes(dirs.work / "state-A")
    result.relay_end_bytes = tree_bytes(dirs.r)


def run_baselines(dirs: RunDirs, result: CountResult) -> None:
    """``find`` over A, then ``cp -r A R && cp -r R B`` into folders of their own."""
    result.steps["find"] = timed(["find", str(dirs.a), "-printf", "%s %T@\n"])
    relay, copy = dirs.work / "cp-R", dirs.work / "cp-B"
    first = timed(["cp", "-r", str(dirs.a), str(relay)])
    result.steps[STEPS[4]] = first + timed(["cp", "-r", str(relay), str(copy)])


def run_count(base: Path, files: int) -> CountResult:
    """Every step at one count, in fresh folders deleted at the end."""
    folders = max(1, files // FILES_PER_FOLDER)
    result = CountResult(files, folders)
    work = base / f"n{files}"
    dirs = RunDirs(work / "A", work)
    work.mkdir()
    try:
        start = time.perf_counter()
        make_tiny(dirs.a, files, folders, seed=4)
        result.generate_s = time.perf_counter() - start
        run_escale(dirs, result)
        run_baselines(dirs, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _seconds(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def steps_table(results: list[CountResult]) -> list[str]:
    """One row per count and step: wall, CPU, peak RSS, wall per file."""
    lines = [
        "| files | step | wall (s) | CPU (s) | peak RSS (MiB) | wall per file (µs) |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for step in STEPS:
            sample = result.steps[step]
            cells = [
                f"{result.files:,}",
                step,
                _seconds(sample.wall),
                _seconds(sample.cpu),
                f"{sample.rss_kib / 1024:.1f}",
                f"{sample.wall / result.files * 1e6:.1f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def per_file(result: CountResult, step: str, baseline_kib: int) -> float:
    """Bytes of peak RSS per file above the idle 10-file sync's peak."""
    return (result.steps[step].rss_kib - baseline_kib) * 1024 / result.files


def memory_cell(value: float) -> str:
    """Bytes per file, marked against the goal."""
    return f"{value:.0f} ({'met' if value < GOAL_BYTES_PER_FILE else 'missed'})"


def sizes_table(results: list[CountResult], baseline_kib: int) -> list[str]:
    """State and relay sizes, and the bytes per file of memory and state."""
    lines = [
        "| files | state of A (MiB) | state per file (B) | relay after push (MiB) "
        "| relay per file (B) | relay at the end (KiB) "
        "| memory per file (B): first push | first pull | idle round |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        memory = [memory_cell(per_file(result, step, baseline_kib)) for step in ESCALE_STEPS]
        cells = [
            f"{result.files:,}",
            f"{result.state_bytes / 2**20:.1f}",
            f"{result.state_bytes / result.files:.0f}",
            f"{result.relay_bytes / 2**20:.1f}",
            f"{result.relay_bytes / result.files:.0f}",
            f"{result.relay_end_bytes / 1024:.1f}",
            *memory,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def growth_table(results: list[CountResult], baseline_kib: int) -> list[str]:
    """(ratio of the figure) ÷ (ratio of the counts) between consecutive counts: 1.0 = linear."""
    if len(results) < 2:
        return []
    head = " | ".join(f"{step} time" for step in STEPS)
    rss = " | ".join(f"{step} RSS" for step in ESCALE_STEPS)
    lines = [f"| counts | {head} | {rss} |", "|---" * (1 + len(STEPS) + len(ESCALE_STEPS)) + "|"]
    for small, large in zip(results, results[1:]):
        scale = large.files / small.files
        cells = [f"{small.files:,} → {large.files:,}"]
        for step in STEPS:
            cells.append(f"{large.steps[step].wall / small.steps[step].wall / scale:.2f}")
        for step in ESCALE_STEPS:
            before = per_file(small, step, baseline_kib) * small.files
            after = per_file(large, step, baseline_kib) * large.files
            cells.append(f"{after / before / scale:.2f}" if before > 0 else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def legend(baseline_kib: int, results: list[CountResult]) -> list[str]:
    """What the tables mean, and how long generating each tree took (untimed)."""
    made = ", ".join(f"{r.files:,} in {r.generate_s:.1f} s" for r in results)
    return [
        "",
        "- Each step runs once, after `os.sync()`; wall and CPU (user + sys) in seconds, peak "
        "RSS the largest VmHWM. B is checked equal to A (`diff -rq`, untimed) after the pull.",
        f"- memory per file = (step's peak RSS − {baseline_kib / 1024:.1f} MiB, the smallest "
        "peak of 3 idle syncs of a 10-file folder) ÷ files; goal: under "
        f"{GOAL_BYTES_PER_FILE} B (Syncthing needs about 2.6 KB per item, syncthing#468). "
        "State = the bytes of A's `state_dir` after the idle round; relay = the bytes of the "
        "`file://` relay's files after the first push, and at the end (once B has pulled, "
        "the data every client has is deleted from the relay).",
        "- growth = (figure at the larger count ÷ figure at the smaller) ÷ (ratio of the "
        "counts): 1.0 is linear, above 1 grows faster than the tree. RSS growth uses the "
        "memory above the 10-file baseline.",
        f"- trees generated (untimed): {made}.",
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--counts", default=DEFAULT_COUNTS, help=f"default {DEFAULT_COUNTS}")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the work folder")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown here")
    parser.add_argument(
        "--settle",
        type=float,
        default=65.0,
        help="seconds to wait after deleting a count's folders (default 65)",
    )
    args = parser.parse_args(argv)
    try:
        args.counts = [int(item) for item in args.counts.split(",") if item.strip()]
    except ValueError:
        parser.error("--counts takes numbers separated by commas")
    if not args.counts or min(args.counts) < 1:
        parser.error("--counts takes numbers >= 1")
    return args


def benchmark(counts: list[int], base: Path, doc: list[str], settle: float) -> None:
    """Every count in turn, then the tables."""
    compile_escale()
    baseline = baseline_rss_kib(base)
    results, notes = [], []
    for files in counts:
        problem = check_disk(base, files)
        if problem:  # the counts measured so far still make their tables
            notes.append(f"- not run, not enough disk: {problem}.")
            break
        results.append(run_count(base, files))
        print(f"scale.py: {files:,} files done", file=sys.stderr, flush=True)
        if files != counts[-1]:
            time.sleep(settle)  # freed inodes are skipped by the allocator for ~60 s
    doc += [*steps_table(results), "", *sizes_table(results, baseline)]
    growth = growth_table(results, baseline)
    doc += [*(["", *growth] if growth else []), *legend(baseline, results), *notes]


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: prints the document; returns 1 when a step fails or B differs from A."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    base = make_base(args.workdir)
    doc = ["# escale at scale", *header(base, argv, 1)[1:-2], ""]
    status = 0
    try:
        benchmark(args.counts, base, doc, args.settle)
    except BenchmarkError as exc:
        doc += ["", f"**Aborted:** {exc}"]
        status = 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("\n".join(doc), flush=True)
    if args.output is not None:
        args.output.write_text("\n".join(doc) + "\n", encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
