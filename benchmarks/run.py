"""escale beside cp, rclone, rclone crypt, restic, Unison and Syncthing, on one machine in one run.

Usage::

    python benchmarks/run.py [--quick] [--repeat N] [--workloads 1,2,...]
        [--tools cp,rclone,rclone-crypt,restic,unison,syncthing,escale]
        [--workdir DIR] [--output FILE.md]

Workloads W1–W6 and tools are described in benchmarks/README.md. Every run works in fresh
folders under a ``chattr +T`` base folder; each workload's folders are deleted once the
workload is done. Prints a markdown document, one table row per tool as each workload ends.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the _*.py helpers beside this file

from _measure import BenchmarkError, Sample, Summary, run_untimed
from _report import TABLE_HEAD, header, legend, row
from _servers import network_tools
from _tools import RunDirs, Tool, local_tools, verify
from _workloads import IDLE, NETWORK, Tree, Workload, workloads

TOOLS = ("cp", "rclone", "rclone-crypt", "restic", "unison", "syncthing", "escale")
INSTALL = {
    "rclone": "apt-get install rclone",
    "restic": "apt-get install restic",
    "unison": "apt-get install unison",
    "syncthing": "apt-get install syncthing",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="counts and sizes ÷ 10")
    parser.add_argument("--scale", type=int, default=None, help="divide counts and sizes by N")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--workloads", default="1,2,3,4,5,6", help="e.g. 1,3 or W1,W3")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the work folder")
    parser.add_argument("--output", type=Path, default=None, help="also write the markdown here")
    parser.add_argument(
        "--network-rclone",
        action="store_true",
        help="W5: also rclone through a crypt remote over each server (slow: one request per "
        "file, about 30 ms each on these servers)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds to wait after deleting a workload's folders (default 65, 0 when scaled)",
    )
    args = parser.parse_args(argv)
    args.scale = args.scale or (10 if args.quick else 1)
    if args.settle is None:
        args.settle = 0.0 if args.scale > 1 else 65.0
    unknown = set(args.tools.split(",")) - set(TOOLS)
    if unknown or args.repeat < 1 or args.scale < 1:
        parser.error(f"--tools takes {','.join(TOOLS)}; --repeat and --scale are >= 1")
    return args


def select_workloads(spec: str, scale: int) -> list[Workload]:
    """The workloads named in ``--workloads`` (``1,3`` or ``W1,W3``), in plan order."""
    wanted = {f"W{item.strip().upper().lstrip('W')}" for item in spec.split(",") if item.strip()}
    return [w for w in workloads(scale) if w.key in wanted]


def select_tools(names: str, notes: list[str]) -> list[Tool]:
    """The local tools asked for plus the baselines (cp, find), minus those not installed."""
    wanted = set(names.split(",")) | {"cp", "find"}
    chosen = []
    for tool in local_tools():
        if tool.name not in wanted:
            continue
        if tool.binary and shutil.which(tool.binary) is None:
            hint = INSTALL.get(tool.binary, f"install {tool.binary}")
            notes.append(f"{tool.name}: not installed — `{hint}`")
            continue
        chosen.append(tool)
    return chosen


def rotated(tools: list[Tool], repetition: int) -> list[Tool]:
    """The run order of one repetition: the tool list rotated by ``repetition``."""
    shift = repetition % len(tools)
    return tools[shift:] + tools[:shift]


def run_one(workload: Workload, tool: Tool, dirs: RunDirs) -> Sample:
    """Prepare the run's folders, time the tool, then check that B equals A (untimed)."""
    dirs.prepare()
    if workload.kind == IDLE:
        assert tool.idle is not None
        return tool.idle(dirs)
    assert tool.transfer is not None
    sample = tool.transfer(dirs)
    try:
        verify(dirs.a, tool.restored(dirs))
    except BenchmarkError as exc:
        raise BenchmarkError(f"{workload.key} {tool.name}: {exc}") from exc
    return sample


def measure_workload(
    workload: Workload, tools: list[Tool], source: Path, base: Path, repeat: int
) -> dict[str, list[Sample]]:
    """Every tool ``repeat`` times, alternating; each run in a fresh folder under ``base``."""
    samples: dict[str, list[Sample]] = {tool.name: [] for tool in tools}
    runs: list[Path] = []
    try:
        for repetition in range(repeat):
            for tool in rotated(tools, repetition):
                work = base / f"{workload.key}-r{repetition}-{tool.name.replace(' ', '-')}"
                runs.append(work)
                samples[tool.name].append(run_one(workload, tool, RunDirs(source, work)))
                if workload.delete_each_run:
                    shutil.rmtree(work)
    finally:
        for work in runs:
            shutil.rmtree(work, ignore_errors=True)
    return samples


def rows(workload: Workload, samples: dict[str, list[Sample]]) -> list[str]:
    """The table rows of one workload, in tool order."""
    summaries = {name: Summary.of(runs) for name, runs in samples.items() if runs}
    base = summaries.get(workload.baseline)
    return [
        row(workload, name, summary, base.wall if base else None)
        for name, summary in summaries.items()
    ]


@contextlib.contextmanager
def workload_tools(
    workload: Workload, tools: list[Tool], base: Path, notes: list[str], network_rclone: bool
) -> Iterator[list[Tool]]:
    """The tools that apply to a workload (W5: cp, then escale and rclone crypt through each
    started server)."""
    if workload.kind == NETWORK:
        baseline = [tool for tool in tools if tool.name == "cp"]
        if not any(tool.name == "escale" for tool in tools):
            yield baseline
            return
        servers = base / "W5-servers"
        rclone = network_rclone and any(tool.name == "rclone-crypt" for tool in tools)
        try:
            with network_tools(servers, notes, rclone) as remote:
                yield baseline + remote
        finally:
            shutil.rmtree(servers, ignore_errors=True)
        return
    needed = "idle" if workload.kind == IDLE else "transfer"
    yield [tool for tool in tools if getattr(tool, needed) is not None]


def source_tree(tree: Tree, base: Path, made: dict[str, Path]) -> Path:
    """The tree's folder, generated on first use (shared by workloads naming the same tree)."""
    if tree.name not in made:
        made[tree.name] = base / f"src-{tree.name}"
        tree.make(made[tree.name])
    return made[tree.name]


def make_base(workdir: Optional[Path]) -> Path:
    """A new base folder with ``chattr +T`` attempted, so each run folder gets a fresh block
    group (this ext4 re-creates just-deleted inodes slowly)."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="escale-bench-", dir=workdir))
    subprocess.run(["chattr", "+T", str(base)], stderr=subprocess.DEVNULL, check=False)
    return base


def emit(lines: list[str], doc: list[str]) -> None:
    """Print lines at once and keep them for ``--output``."""
    for line in lines:
        print(line, flush=True)
    doc.extend(lines)


def compile_escale() -> None:
    """Byte-compile escale's modules, as ``pip install`` does: an editable install under
    ``PYTHONDONTWRITEBYTECODE`` would otherwise compile them from source at every start."""
    import escale_core

    package = Path(escale_core.__file__).resolve().parent
    folders = [package, package.parent / "plugins"]
    run_untimed([sys.executable, "-m", "compileall", "-q", *map(str, folders)])


def benchmark(args: argparse.Namespace, argv: list[str], base: Path, doc: list[str]) -> None:
    """Run every selected workload and emit its rows, then the notes."""
    notes: list[str] = []
    compile_escale()
    tools = select_tools(args.tools, notes)
    plan = select_workloads(args.workloads, args.scale)
    emit(header(base, argv, args.repeat) + TABLE_HEAD, doc)
    made: dict[str, Path] = {}
    for index, workload in enumerate(plan):
        source = source_tree(workload.tree, base, made)
        with workload_tools(workload, tools, base, notes, args.network_rclone) as chosen:
            samples = measure_workload(workload, chosen, source, base, args.repeat)
        emit(rows(workload, samples), doc)
        if args.settle and index + 1 < len(plan):
            time.sleep(args.settle)  # freed inodes are skipped by the allocator for ~60 s
    emit(["", *legend(), *(f"- {note}" for note in notes)], doc)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: returns the exit status (1 when a run fails or B differs from A)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    base = make_base(args.workdir)
    doc: list[str] = []
    status = 0
    try:
        benchmark(args, argv, base, doc)
    except BenchmarkError as exc:
        emit(["", f"**Aborted:** {exc}"], doc)
        status = 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if args.output is not None:
            args.output.write_text("\n".join(doc) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
