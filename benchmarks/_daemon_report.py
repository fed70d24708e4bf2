"""The daemon benchmark's markdown: a header, the latency table and the idle-cost table."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Optional

from _daemon_common import IdleCost, Series
from _daemon_runs import Plan
from _daemon_syncthing import version
from _report import _escale_version, _first_line, _memory, _proc_field

LATENCY_HEAD = [
    "| tool | relay | before each sample | n | median (s) | p90 (s) | max (s) | goal (median) "
    "| median ÷ Syncthing |",
    "|---|---|---|---|---|---|---|---|---|",
]
IDLE_HEAD = [
    "| tool | relay | files | initial sync (s) | window (s) | CPU (s) | % of one core "
    "| peak RSS in window (MiB) | peak RSS since start (MiB) | goal | ÷ Syncthing (CPU, RSS) |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
#: escale's idle goals: CPU as % of one core, peak RSS in MiB.
IDLE_CPU_GOAL, IDLE_RSS_GOAL = 1.0, 150.0


def _sshd_version() -> str:
    try:
        done = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    return done.stderr.strip().split(",")[0] or "unknown"


def header(workdir: Path, argv: list[str], plan: Plan) -> list[str]:
    """Title, machine, software, date, command line and the settings that shape the figures."""
    fs = _first_line(["stat", "-f", "-c", "%T", str(workdir)])
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return [
        "# escale daemon benchmark",
        "",
        f"- machine: nproc {os.cpu_count()}, model name "
        f"{_proc_field('/proc/cpuinfo', 'model name')}, memory {_memory()}, "
        f"kernel {platform.release()}",
        f"- work dir: `{workdir}` (filesystem {fs})",
        f"- software: Python {platform.python_version()}, escale {_escale_version()}, "
        f"Syncthing {version(plan.syncthing or 'syncthing') or 'not installed'}, "
        f"SFTP server {_sshd_version()}",
        f"- date: {now}",
        f"- command: `{shlex.join(['python', sys.argv[0], *argv])}`",
        f"- latency: {plan.samples} samples per series, each a new 100 KiB file of random bytes "
        "moved into A's folder in one rename, timed until B's copy is byte-identical (polled "
        f"every 10 ms); network relays with `refresh = {plan.refresh:g}`",
        f"- idle: {plan.files:,} files of 1–100 B in {max(1, plan.files // 100):,} folders, "
        f"window {plan.idle_seconds:g} s",
        "",
    ]


def _s(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.2f}"


def _goal(value: float, goal: Optional[float], unit: str = " s") -> str:
    if goal is None:
        return "–"
    return f"≤ {goal:g}{unit}: {'met' if value <= goal else 'MISSED'}"


def latency_table(series: list[Series], peer: Optional[Series], plan: Plan) -> list[str]:
    """One row per series, Syncthing's last; ratios of medians to Syncthing's median."""
    rows = ["", "## Propagation latency, A → B", "", *LATENCY_HEAD]
    for one in [*series, *([peer] if peer else [])]:
        ratio = f"{one.median / peer.median:.2f}×" if peer and one is not peer else "–"
        cells = [
            one.tool, one.relay, one.condition, str(len(one.seconds)), _s(one.median),
            _s(one.p90), _s(max(one.seconds)), _goal(one.median, one.goal), ratio,
        ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    if peer is None:
        rows.append("| syncthing | direct | not installed | 0 | – | – | – | – | – |")
    rows.append("")
    for one in [*series, *([peer] if peer else [])]:  # in the order taken
        taken = ", ".join(f"{value:.2f}" for value in one.seconds)
        rows.append(f"- {one.tool} {one.relay}, {one.condition.split(':')[0]}: {taken} s")
    return rows


def _mib(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def idle_table(costs: list[IdleCost], peer: Optional[IdleCost]) -> list[str]:
    """One row per run, Syncthing's last; ratios of CPU and peak RSS to Syncthing's."""
    rows = ["", "## Idle cost", "", *IDLE_HEAD]
    for cost in [*costs, *([peer] if peer else [])]:
        ratio = "–"
        if peer and cost is not peer:
            cpu = f"{cost.cpu / peer.cpu:.2f}×" if peer.cpu else "–"
            ratio = f"{cpu}, {cost.peak_mib / peer.peak_mib:.2f}×"
        goal = "–"
        if cost.tool == "escale":
            goal = (
                f"CPU {_goal(cost.percent, IDLE_CPU_GOAL, ' %')}, "
                f"RSS {_goal(cost.peak_mib, IDLE_RSS_GOAL, ' MiB')}"
            )
        cells = [
            cost.tool, cost.relay, f"{cost.files:,}", _s(cost.initial), f"{cost.wall:.0f}",
            _s(cost.cpu), f"{cost.percent:.3f} %", _mib(cost.peak_mib), _mib(cost.peak_all_mib),
            goal, ratio,
        ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    if peer is None:
        rows.append("| syncthing | direct | not installed | – | – | – | – | – | – | – | – |")
    rows += ["", *(f"- {c.tool} {c.relay}: {c.note}" for c in [*costs, *([peer] if peer else [])])]
    return rows
