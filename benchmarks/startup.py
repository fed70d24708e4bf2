"""The fixed cost of one escale command: interpreter start, imports, configuration, an idle sync.

Usage::

    python benchmarks/startup.py [--runs N] [--output FILE.md] [--json FILE] [--workdir DIR]

Each command runs 3 times untimed (warm-ups), then ``--runs`` times (default 30); the table
gives the median wall milliseconds, the median CPU milliseconds and the ratio to
``python -c pass`` (the same interpreter as escale), with the targets: ``--version`` ≤ 5×, an
idle sync of an unchanged 10-file folder ≤ 8×. Under it, the top 10 imports by cumulative time
of that idle sync (``python -X importtime``), since imports are what limits startup.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the _*.py helpers beside this file

from _measure import Command, CommandFailed, run_untimed
from _report import header
from _tools import ESCALE, RCLONE, RunDirs, escale_config, escale_sync
from _workloads import make_tiny
from run import compile_escale, make_base

WARMUPS = 3
#: The baseline row every ratio divides by.
BASELINE = "python -c pass"
#: name of the row -> the largest ratio to the baseline that meets escale's goal.
TARGETS = {"python -m escale_core --version": 5.0, "escale --version": 5.0}
SYNC_ROW = "escale sync s (unchanged, 10 files)"
TARGETS[SYNC_ROW] = 8.0
IMPORTS_SHOWN = 10


@dataclass(frozen=True)
class Row:
    """One command of the table and its timed runs (wall and CPU seconds)."""

    name: str
    command: list[str]
    walls: list[float]
    cpus: list[float]

    @property
    def wall_ms(self) -> float:
        """Median wall milliseconds."""
        return statistics.median(self.walls) * 1000

    @property
    def cpu_ms(self) -> float:
        """Median CPU (user + sys) milliseconds."""
        return statistics.median(self.cpus) * 1000


def time_once(command: Command) -> tuple[float, float]:
    """(wall, CPU) seconds of one run. A blocking ``wait4``, unlike ``_measure.measure``'s
    2 ms polling for the peak RSS: a 20 ms command needs the exact end, and RSS is not asked."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(part) for part in command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # reaped here, not by Popen
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if code:
        raise CommandFailed(command, code, stderr[-4000:])
    return wall, usage.ru_utime + usage.ru_stime


def time_row(name: str, command: list[str], runs: int, fresh: Optional[Path] = None) -> Row:
    """Warm-ups, then ``runs`` timed runs. ``fresh``: a destination folder removed before each
    run (rclone's copy then copies its file every time instead of finding it there)."""
    walls, cpus = [], []
    for index in range(WARMUPS + runs):
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        wall, cpu = time_once(command)
        if index >= WARMUPS:
            walls.append(wall)
            cpus.append(cpu)
    return Row(name, command, walls, cpus)


def console_script() -> Optional[Path]:
    """The ``escale`` console script installed beside this interpreter, if any."""
    script = Path(sys.executable).parent / "escale"
    return script if script.is_file() and os.access(script, os.X_OK) else None


def idle_folder(base: Path) -> Path:
    """A 10-file folder synced once into a file relay (untimed); returns A's configuration."""
    dirs = RunDirs(base, base / "sync")
    dirs.work.mkdir()
    make_tiny(dirs.a, 10, 1, seed=4)
    dirs.r.mkdir()
    config = escale_config(dirs, "A", str(dirs.r))
    run_untimed(escale_sync(config))
    return config


def commands(base: Path, config: Path) -> list[tuple[str, list[str], Optional[Path]]]:
    """The rows to time: (name, command line, folder to remove before each run)."""
    python = sys.executable
    rows: list[tuple[str, list[str], Optional[Path]]] = [
        (BASELINE, [python, "-c", "pass"], None),
        ("python -m escale_core --version", [*ESCALE, "--version"], None),
    ]
    script = console_script()
    if script is not None:
        rows.append(("escale --version", [str(script), "--version"], None))
    rows.append((SYNC_ROW, escale_sync(config), None))
    if shutil.which("rclone"):
        one = base / "sync" / "A" / "d0000" / "f000000"
        dest = base / "rclone-dest"
        rows.append(
            ("rclone copy (1 file, reference)", [*RCLONE, "copy", str(one), str(dest)], dest)
        )
    return rows


def import_times(config: Path) -> list[tuple[int, int, str]]:
    """(cumulative µs, self µs, module) of the idle sync's imports, slowest cumulative first."""
    command = [sys.executable, "-X", "importtime", *ESCALE[1:], *escale_sync(config)[3:]]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise CommandFailed(command, done.returncode, done.stderr[-4000:])
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, cumulative, module = (part.strip() for part in line[12:].split("|", 2))
        if own.isdigit() and cumulative.isdigit():
            found.append((int(cumulative), int(own), module))
    return sorted(found, reverse=True)


def verdict(name: str, ratio: float) -> str:
    """``met (≤ 5×)`` / ``missed (≤ 5×)`` for a row with a target, ``–`` otherwise."""
    target = TARGETS.get(name)
    if target is None:
        return "–"
    return f"{'met' if ratio <= target else 'missed'} (≤ {target:g}×)"


def table(rows: list[Row]) -> list[str]:
    """The markdown table: medians, ratio to ``python -c pass`` and the targets."""
    base = rows[0].wall_ms
    lines = [
        "| command | wall median (ms) | CPU median (ms) | ratio to `python -c pass` | target |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row.wall_ms / base
        cells = [row.name, f"{row.wall_ms:.1f}", f"{row.cpu_ms:.1f}", f"{ratio:.1f}×"]
        lines.append("| " + " | ".join([*cells, verdict(row.name, ratio)]) + " |")
    return lines


def imports_table(found: list[tuple[int, int, str]]) -> list[str]:
    """The top imports of the idle sync by cumulative time."""
    lines = [
        "",
        f"Top {IMPORTS_SHOWN} imports of `escale sync s` by cumulative time "
        "(`python -X importtime`, one run; cumulative includes the imports nested in it):",
        "",
        "| module | cumulative (ms) | self (ms) |",
        "|---|---|---|",
    ]
    for cumulative, own, module in found[:IMPORTS_SHOWN]:
        lines.append(f"| `{module.strip()}` | {cumulative / 1000:.1f} | {own / 1000:.1f} |")
    total = sum(own for _, own, _ in found)
    lines.append(f"\nAll {len(found)} imports: {total / 1000:.1f} ms (sum of self times).")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per command (30)")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown here")
    parser.add_argument("--json", type=Path, default=None, help="write every run here")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the work folder")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs is >= 1")
    return args


def write_json(path: Path, rows: list[Row], found: list[tuple[int, int, str]]) -> None:
    """Every timed run of every row, and every import's times."""
    data = {
        "rows": [
            {
                "name": row.name,
                "command": row.command,
                "median_wall_ms": row.wall_ms,
                "median_cpu_ms": row.cpu_ms,
                "ratio": row.wall_ms / rows[0].wall_ms,
                "target": TARGETS.get(row.name),
                "walls_s": row.walls,
                "cpus_s": row.cpus,
            }
            for row in rows
        ],
        "imports": [{"module": m, "cumulative_us": c, "self_us": s} for c, s, m in found],
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: prints the document; returns 1 when a command fails."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    base = make_base(args.workdir)
    doc = ["# escale startup", *header(base, argv, args.runs)[1:-2]]
    doc += [f"- runs: {args.runs} timed per command after {WARMUPS} warm-ups; medians", ""]
    status = 0
    try:
        compile_escale()
        config = idle_folder(base)
        rows = [
            time_row(name, cmd, args.runs, fresh) for name, cmd, fresh in commands(base, config)
        ]
        found = import_times(config)
        doc += table(rows) + imports_table(found)
        if args.json is not None:
            write_json(args.json, rows, found)
    except CommandFailed as exc:
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
