"""escale's daemon beside Syncthing: propagation latency and idle cost, in one run.

Usage::

    python benchmarks/daemon.py [--quick] [--only latency,idle] [--relays file,sftp,webdav]
        [--idle-relays file,sftp] [--samples N] [--idle-minutes M] [--files N]
        [--refresh S] [--idle-wait S] [--settle S] [--syncthing BINARY] [--workdir DIR]
        [--output FILE.md]

What is measured, and what limits each figure, is in benchmarks/README.md. Prints a markdown
document (two tables); every process it starts is stopped by pid, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the _*.py helpers beside this file

from _daemon_common import IdleCost, Series, ensure_watches
from _daemon_report import header, idle_table, latency_table
from _daemon_runs import Plan, escale_idle, escale_latency, syncthing_idle, syncthing_latency
from _daemon_syncthing import version
from _measure import BenchmarkError
from run import compile_escale, emit, make_base

RELAYS = ("file", "sftp", "webdav")
PARTS = ("latency", "idle")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line; ``--quick`` changes only the defaults of what is not given."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="3 samples, 1 idle minute, 10,000 files")
    add("--only", default=",".join(PARTS), help="latency, idle or both (default)")
    add("--relays", default=",".join(RELAYS), help="latency relays (default file,sftp,webdav)")
    add("--idle-relays", default="file,sftp", help="idle-cost relays (default file,sftp)")
    add("--samples", type=int, default=None, help="latency samples per series (default 10)")
    add("--idle-minutes", type=float, default=None, help="idle window (default 10)")
    add("--files", type=int, default=None, help="idle tree size (default 100,000)")
    add("--refresh", type=float, default=10.0, help="network relays' refresh (default 10 s)")
    add("--idle-wait", type=float, default=None, help="quiet s before an after-idle sample")
    add("--settle", type=float, default=2.0, help="s after an arrival, then wait until idle")
    add("--syncthing", default="syncthing", help="the Syncthing binary (skipped if missing)")
    add("--workdir", type=Path, default=None, help="parent of the work folder")
    add("--output", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.samples = args.samples or (3 if quick else 10)
    args.idle_minutes = args.idle_minutes if args.idle_minutes is not None else 1 if quick else 10
    args.files = args.files or (10_000 if quick else 100_000)
    # the pause after activity reaches ``refresh`` after about 3 × refresh of idle checks
    args.idle_wait = args.idle_wait if args.idle_wait is not None else 3 * args.refresh + 5
    for name, allowed in (("only", PARTS), ("relays", RELAYS), ("idle_relays", RELAYS)):
        chosen = [item.strip() for item in getattr(args, name).split(",") if item.strip()]
        if set(chosen) - set(allowed):
            parser.error(f"--{name.replace('_', '-')} takes {','.join(allowed)}")
        setattr(args, name, chosen)
    if args.samples < 1 or args.files < 1 or args.idle_minutes <= 0:
        parser.error("--samples, --files and --idle-minutes must be positive")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    """The run's settings; Syncthing is ``None`` when its binary is not installed."""
    return Plan(
        samples=args.samples,
        refresh=args.refresh,
        idle_wait=args.idle_wait,
        settle=args.settle,
        files=args.files,
        idle_seconds=args.idle_minutes * 60,
        syncthing=args.syncthing if version(args.syncthing) else None,
    )


def latency(args: argparse.Namespace, plan: Plan, base: Path, doc: list[str]) -> None:
    """Every latency series, then their table (rows printed as each relay ends)."""
    series: list[Series] = []
    for kind in args.relays:
        series += escale_latency(kind, base / f"latency-{kind}", plan)
        print(f"<!-- latency {kind} done -->", file=sys.stderr, flush=True)
    peer = syncthing_latency(base / "latency-syncthing", plan) if plan.syncthing else None
    emit(latency_table(series, peer, plan), doc)


def idle(
    args: argparse.Namespace, plan: Plan, base: Path, notes: list[str], doc: list[str]
) -> None:
    """The idle cost of each escale relay, then of Syncthing, then their table."""
    # one watch per folder: escale's folder and relay, and two Syncthing instances
    ensure_watches(4 * (plan.files // 100 + 1) + 8192, notes)
    costs: list[IdleCost] = []
    for kind in args.idle_relays:
        costs.append(escale_idle(kind, base / f"idle-{kind}", plan))
        print(f"<!-- idle {kind} done -->", file=sys.stderr, flush=True)
    peer = syncthing_idle(base / "idle-syncthing", plan) if plan.syncthing else None
    emit(idle_table(costs, peer), doc)


def benchmark(args: argparse.Namespace, argv: list[str], base: Path, doc: list[str]) -> None:
    """The selected parts, in order, then the notes."""
    compile_escale()
    plan = make_plan(args)
    notes: list[str] = []
    if plan.syncthing is None:
        notes.append(f"syncthing: not installed (`{args.syncthing}`) — `apt-get install syncthing`")
    emit(header(base, argv, plan), doc)
    if "latency" in args.only:
        latency(args, plan, base, doc)
    if "idle" in args.only:
        idle(args, plan, base, notes, doc)
    emit(["", *(f"- {note}" for note in notes)], doc)


def interrupt(signum: int, frame: Optional[FrameType]) -> None:
    """SIGTERM as Ctrl-C: the ``finally`` blocks stop every process started."""
    raise KeyboardInterrupt


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: returns the exit status (1 when a run fails)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
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
