"""The benchmark runs end to end (``--quick``, once); timings are reported, never asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"

sys.path.insert(0, str(RUN.parent))
from _measure import BenchmarkError  # noqa: E402
from _tools import verify  # noqa: E402


def table_rows(markdown: str) -> dict[tuple[str, str], list[str]]:
    """``(workload key, tool) -> cells`` of the results table."""
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0][:1] == "W" and cells[0][1:2].isdigit():
            rows[(cells[0].split(":")[0], cells[1])] = cells
    return rows


@pytest.mark.slow
def test_quick_benchmark_syncs_every_workload_and_reports_each_tool(tmp_path: Path) -> None:
    output = tmp_path / "results.md"
    done = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--quick",
            "--repeat",
            "1",
            "--workdir",
            str(tmp_path),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = table_rows(done.stdout)
    for key in ("W1", "W2", "W3", "W6"):
        assert (key, "cp") in rows and (key, "escale") in rows, key
        assert float(rows[(key, "escale")][2]) > 0
        assert rows[(key, "escale")][5].split("×")[0].replace(".", "").isdigit()
    assert ("W4", "find") in rows and ("W4", "escale") in rows
    network = [tool for key, tool in rows if key == "W5"]
    assert any(tool.startswith("escale ") for tool in network) or "W5 " in done.stdout
    for tool in ("rclone", "restic", "unison", "syncthing"):
        ran = ("W1", tool) in rows
        assert ran or f"{tool}: not installed" in done.stdout, tool
    if ("W1", "unison") in rows:
        assert ("W4", "unison") in rows  # unison's idle round
    assert output.read_text() == done.stdout
    assert not any(tmp_path.glob("escale-bench-*")), "the work folder was not removed"


def test_a_run_whose_copy_differs_from_the_source_is_an_error(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "f").write_bytes(b"same")
    verify(a, b)
    (b / "sub" / "f").write_bytes(b"other")
    with pytest.raises(BenchmarkError, match="differs"):
        verify(a, b)
    (b / "sub" / "f").unlink()
    with pytest.raises(BenchmarkError, match="differs"):
        verify(a, b)


def test_state_cost_reports_bytes_per_record_for_each_vector_size() -> None:
    script = ROOT / "benchmarks" / "state_cost.py"
    run = subprocess.run(
        [sys.executable, str(script), "--files", "200"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line for line in run.stdout.splitlines() if "path +" in line]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "3", "5"], run.stdout


def test_daemon_benchmark_reports_latency_and_idle_cost_without_syncthing() -> None:
    """benchmarks/daemon.py at a tiny size, Syncthing hidden: both tables keep their shape."""
    # a short work folder: a daemon's control socket path must fit in 108 bytes (AF_UNIX)
    with tempfile.TemporaryDirectory(prefix="ebd-") as work:
        run_daemon_benchmark(Path(work))


def run_daemon_benchmark(tmp_path: Path) -> None:
    output = tmp_path / "daemon.md"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "daemon.py"),
            "--quick",
            "--relays",
            "file,sftp",
            "--idle-relays",
            "file",
            "--samples",
            "2",
            "--refresh",
            "1",
            "--idle-wait",
            "2",
            "--idle-minutes",
            "0.1",
            "--files",
            "1000",
            "--syncthing",
            str(tmp_path / "no-syncthing"),
            "--workdir",
            str(tmp_path),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in done.stdout.splitlines()
        if line.startswith("| escale") or line.startswith("| syncthing")
    ]
    latency = [row for row in rows if len(row) == 9]
    idle = [row for row in rows if len(row) == 11]
    assert [row[1] for row in latency] == ["file", "sftp", "sftp", "direct"], done.stdout
    for row in latency[:3]:
        assert row[3] == "2" and float(row[4]) > 0 and float(row[6]) >= float(row[4])
    assert latency[3][2] == "not installed"
    assert [(row[0], row[1]) for row in idle] == [("escale", "file"), ("syncthing", "direct")]
    assert idle[0][2] == "1,000" and idle[0][6].endswith(" %") and float(idle[0][7]) > 0
    assert "syncthing: not installed" in done.stdout
    assert output.read_text() == done.stdout
    assert not any(tmp_path.glob("escale-bench-*")), "the work folder was not removed"


RELAYS = ROOT / "benchmarks" / "relays.py"


def test_relay_benchmark_reports_escale_beside_rclone_copy_through_the_same_server(
    tmp_path: Path,
) -> None:
    """benchmarks/relays.py at a tiny size, one run, one server: the table has escale's and
    rclone's medians and their ratios, the JSON every run, and servers not in this branch are
    one note each."""
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed (apt-get install rclone)")
    pytest.importorskip("wsgidav")
    output, data = tmp_path / "relays.md", tmp_path / "relays.json"
    tiny = ["--servers", "webdav", "--runs", "1", "--files", "5", "--big-mib", "1"]
    run = subprocess.run(
        [sys.executable, str(RELAYS), *tiny, "--output", str(output), "--json", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines() if "WsgiDAV" in line]
    assert [row[1].strip() for row in rows] == ["5 × 4 KiB", "1 × 1 MiB"], run.stdout
    for row in rows:  # escale push and pull, rclone's, both ratios, escale's peak: all numbers
        assert all(float(cell) > 0 for cell in row[2:]), row
    assert output.read_text(encoding="utf-8").strip() == run.stdout.strip()
    records = json.loads(data.read_text(encoding="utf-8"))["results"]
    assert [r["workload"] for r in records] == ["5 × 4 KiB", "1 × 1 MiB"]
    for record in records:
        for tool in ("escale", "rclone"):
            for step in ("push", "pull"):
                figures = record[tool][step]
                assert len(figures["runs_s"]) == 1 and figures["median_s"] == figures["runs_s"][0]


def test_a_relay_benchmark_server_whose_start_function_is_missing_is_not_available() -> None:
    """A line of SERVERS for a server another branch adds is reported, never an error."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import relays

    missing = relays.ServerEntry("x", "X", "ftp", "start_no_such_server").start_function()
    assert missing == "tests.servers.ftp has no start_no_such_server"
    assert callable(relays.ServerEntry("ftp", "FTP", "ftp", "start_ftp").start_function())


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row that is not a separator."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("|---")
    ]


def run_benchmark(script: str, *args: str, timeout: float = 120) -> str:
    """Run ``benchmarks/SCRIPT ARGS`` to its end, successfully; its standard output."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_startup_benchmark_reports_every_command_against_python_and_the_slowest_imports(
    tmp_path: Path,
) -> None:
    """benchmarks/startup.py with 2 runs: one row per command with its ratio and target, the
    imports table under it, every run in the JSON file."""
    output, data = tmp_path / "startup.md", tmp_path / "startup.json"
    stdout = run_benchmark(
        "startup.py",
        *("--runs", "2", "--workdir", str(tmp_path)),
        *("--output", str(output), "--json", str(data)),
    )
    rows = {row[0]: row for row in markdown_rows(stdout)}
    assert rows["python -c pass"][3] == "1.0×"
    for name in ("python -m escale_core --version", "escale sync s (unchanged, 10 files)"):
        assert float(rows[name][1]) > 0 and rows[name][4].split()[0] in ("met", "missed"), name
    assert ("rclone copy (1 file, reference)" in rows) == (shutil.which("rclone") is not None)
    modules = [row[0] for row in markdown_rows(stdout) if row[0].startswith("`")]
    assert len(modules) == 10 and any("escale_core" in module for module in modules)
    records = json.loads(data.read_text(encoding="utf-8"))["rows"]
    assert all(len(record["walls_s"]) == 2 for record in records)
    assert output.read_text(encoding="utf-8").strip() == stdout.strip()
    assert not any(tmp_path.glob("escale-bench-*")), "the work folder was not removed"


def test_scale_benchmark_reports_every_step_and_the_bytes_per_file(tmp_path: Path) -> None:
    """benchmarks/scale.py at 200 files: every step has a row, the sizes table a row with
    the memory per file marked against the goal, and the work folder is removed."""
    stdout = run_benchmark(
        "scale.py", *("--counts", "200", "--settle", "0", "--workdir", str(tmp_path))
    )
    rows = markdown_rows(stdout)
    steps = [row[1] for row in rows if row[0] == "200" and len(row) == 6]
    assert steps == ["first push", "first pull", "idle round", "find", "cp -r A R && cp -r R B"]
    sizes = [row for row in rows if row[0] == "200" and len(row) == 9]
    assert len(sizes) == 1 and int(sizes[0][2]) > 0 and int(sizes[0][4]) > 0, stdout
    assert all(cell.endswith(("(met)", "(missed)")) for cell in sizes[0][6:]), sizes
    assert not any(tmp_path.glob("escale-bench-*")), "the work folder was not removed"


def test_inside_benchmark_times_durability_and_key_derivation_in_each_first_sync(
    tmp_path: Path,
) -> None:
    """benchmarks/inside.py on trees divided by 100: a push and a pull row per tree, each with
    a key derivation (first syncs) and the parts no larger than the whole."""
    output = tmp_path / "inside.md"
    stdout = run_benchmark(
        "inside.py", *("--runs", "1", "--scale", "100", "--output", str(output)), timeout=300
    )
    rows = markdown_rows(stdout)[1:]  # the header row first
    assert [(row[0].split()[0], row[1]) for row in rows] == [
        ("W1", "first push"),
        ("W1", "first pull"),
        ("W2", "first push"),
        ("W2", "first pull"),
    ]
    for row in rows:
        wall, syncfs, argon2, rest = (float(cell) for cell in row[2:])
        assert argon2 > 0 and syncfs > 0 and rest > 0, row
        assert abs(wall - syncfs - argon2 - rest) < 0.002, row
    assert output.read_text(encoding="utf-8").strip() == stdout.strip()
