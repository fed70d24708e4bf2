"""``escale relay check`` probes a section's relay and cleans up after itself."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .conftest import RunEscale


def test_relay_check_reports_every_probe_ok_on_a_local_relay(
    escale: RunEscale, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config('[s]\npath = "{tmp}/A"\nrelay = "{tmp}/R"\nencryption = "plain"\n')
    run = escale("-c", str(config), "relay", "check", "s")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"[s] file://{tmp_path}/R"
    probes = {line.split("  ")[0].strip(): line for line in lines[1:]}
    assert set(probes) == {
        "write and read",
        "listing after write",
        "streaming",
        "overwrite",
        "interrupted write",
        "exclusive create",
        "clock skew",
        "delete",
    }
    assert all("  ok  " in line for line in probes.values()), run.stdout
    assert "atomic" in probes["exclusive create"]
    assert list((tmp_path / "R").iterdir()) == []  # the scratch folder is gone


def test_relay_check_of_an_unreachable_relay_is_one_line_exit_1(
    escale: RunEscale, write_config: Callable[..., Path]
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_config(
        f'[s]\npath = "{{tmp}}/A"\nrelay = "ftp://u@127.0.0.1:{port}/x"\n'
        'encryption = "plain"\npassword = "p"\n'
    )
    run = escale("-c", str(config), "relay", "check", "s", timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.error_lines) == 1 and "127.0.0.1" in run.stderr
