"""The markdown document: machine header, the one results table, notes."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

from _measure import Summary
from _workloads import Target, Workload

TABLE_HEAD = [
    "| workload | tool | wall median (s) | CPU median (s) | peak RSS (MiB) | ratio |",
    "|---|---|---|---|---|---|",
]


def _first_line(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    except OSError:
        return "not installed"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def _proc_field(path: str, name: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _memory() -> str:
    total = _proc_field("/proc/meminfo", "MemTotal")
    try:
        return f"{int(total.split()[0]) / 2**20:.1f} GiB"
    except (ValueError, IndexError):
        return total


def _version(tool: str, command: list[str]) -> str:
    if shutil.which(tool) is None:
        return "not installed"
    words = _first_line(command).split()
    return " ".join(words[1:] if words and words[0] == tool else words)


def _escale_version() -> str:
    try:
        return importlib.metadata.version("escale")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def header(workdir: Path, argv: list[str], repeat: int) -> list[str]:
    """Title and the machine, software, date, command line and repetition count."""
    fs = _first_line(["stat", "-f", "-c", "%T", str(workdir)])
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return [
        "# escale benchmark",
        "",
        f"- machine: nproc {os.cpu_count()}, model name "
        f"{_proc_field('/proc/cpuinfo', 'model name')}, memory {_memory()}, "
        f"kernel {platform.release()}",
        f"- work dir: `{workdir}` (filesystem {fs})",
        f"- software: Python {platform.python_version()}, escale {_escale_version()}, "
        f"rclone {_version('rclone', ['rclone', 'version'])}, "
        f"restic {_version('restic', ['restic', 'version'])}, "
        f"unison {_version('unison', ['unison', '-version'])}, "
        f"syncthing {_version('syncthing', ['syncthing', '--version'])}",
        f"- date: {now}",
        f"- command: `{shlex.join(['python', sys.argv[0], *argv])}`",
        f"- repetitions: {repeat} (tools alternate, order rotated each repetition, "
        "fresh folders for every run)",
        "",
    ]


def _seconds(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.2f}"


def _mib(value: float) -> str:
    if value <= 0:
        return "–"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def ratio_cell(ratio: Optional[float], rss_mib: float, target: Optional[Target]) -> str:
    """``1.8×``; an escale row that misses its target gets ``(target ≤2×)`` and so on."""
    if ratio is None:
        return "–"
    cell = f"{ratio:.1f}×"
    if target is None:
        return cell
    missed = []
    if ratio > target.ratio:
        missed.append(f"≤{target.ratio:g}×")
    if target.rss_mib is not None and not rss_mib < target.rss_mib:
        missed.append(f"RSS <{target.rss_mib:g} MiB")
    return f"{cell} (target {', '.join(missed)})" if missed else cell


def row(workload: Workload, tool: str, summary: Summary, base: Optional[float]) -> str:
    """One table row; ``base`` is the baseline's median wall (None if it did not run)."""
    ratio = summary.wall / base if base else None
    target = workload.target if tool == "escale" else None
    cells = [
        workload.label,
        tool,
        _seconds(summary.wall),
        _seconds(summary.cpu),
        _mib(summary.rss_mib),
        ratio_cell(ratio, summary.rss_mib, target),
    ]
    return "| " + " | ".join(cells) + " |"


def legend() -> list[str]:
    """The fixed notes that explain the table."""
    return [
        "- wall and CPU (user + sys of the tool's processes) are medians over the repetitions; "
        "two-step tools add both steps. Peak RSS is the largest VmHWM of any one step in any "
        "repetition.",
        "- ratio = the tool's median wall ÷ the median wall of `cp -r A R && cp -r R B` on the "
        "same workload (W4: ÷ `find A -printf '%s %T@\\n'`). An escale row that misses its "
        "target says so: targets (issue 14) are W1, W2, W6 ≤ 1× cp; W3 ≤ 1.2× cp with peak "
        "RSS < 64 MiB; W4 ≤ 2× find.",
        "- every timed step starts after a `sync` (untimed), so no tool pays for the writeback "
        "of the step before it.",
        "- W4 times a second run over the unchanged tree after an untimed first one "
        "(escale sync, rclone copy, unison).",
        "- unison: `unison A R` then `unison R B` (`-batch -auto -times`); syncthing: two "
        "instances on 127.0.0.1, A's folder shared directly with B (no relay), timed from "
        "their start until B holds every file and both are idle (start-up and A's initial "
        "scan included); its CPU is both processes', its peak RSS the larger one.",
    ]
