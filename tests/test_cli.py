"""The command line: every command of the contract, versions, exit statuses, one-line errors."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from escale_core import __version__

from .conftest import RunEscale

#: The command-line contract of DESIGN §4.
CONTRACT = [
    "sync",
    "status",
    "start",
    "stop",
    "restart",
    "plugins",
    "access",
    "init",
    "config",
    "relay",
    "migrate",
    "backup",
    "restore",
    "fix",
    "demo",
]


def test_help_lists_every_command_of_the_contract(escale: RunEscale) -> None:
    run = escale("--help")
    assert run.returncode == 0
    listed = set(re.findall(r"^\s{2}([a-z-]+)\s", run.stdout, re.MULTILINE))
    assert set(CONTRACT) <= listed, set(CONTRACT) - listed


def test_subcommand_groups_list_their_commands(escale: RunEscale) -> None:
    assert "list" in escale("plugins", "--help").stdout
    config_help = escale("config", "--help").stdout
    assert "check" in config_help and "import" in config_help
    assert "check" in escale("relay", "--help").stdout


def test_version_prints_the_package_version(escale: RunEscale) -> None:
    run = escale("--version")
    assert run.returncode == 0
    assert run.stdout.strip() == f"escale {__version__}"


def test_unknown_command_is_a_usage_error(escale: RunEscale) -> None:
    run = escale("frobnicate")
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "frobnicate" in run.stderr


def test_python_dash_m_and_console_script_agree(escale: RunEscale) -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    script = shutil.which("escale") or str(Path(sys.executable).parent / "escale")
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout == escale("--version").stdout


def test_demo_syncs_two_folders_and_reports_them_identical(escale: RunEscale) -> None:
    run = escale("demo")
    assert run.returncode == 0, run.stderr
    assert "laptop/ and server/ are identical" in run.stdout
    assert "no file names or contents" in run.stdout


@contextlib.contextmanager
def waiting_for_a_silent_relay(
    args: list[str],
    env: dict[str, str],
    write_config: Callable[..., Path],
    tmp_path: Path,
    **popen: Any,
) -> Iterator[subprocess.Popen[str]]:
    """``escale -c CONFIG ARGS`` on a section whose FTP relay accepts the connection and never
    says a word; yielded once escale waits for the server's greeting (stopped if still running
    at the end)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.settimeout(30)
    (tmp_path / "A").mkdir()
    config = write_config(
        f"""
        [s]
        path = "{{tmp}}/A"
        relay = "ftp://127.0.0.1:{silent.getsockname()[1]}/r"
        passphrase = "pw"
        """
    )
    with silent:
        proc = subprocess.Popen(
            [sys.executable, "-m", "escale_core", "-c", str(config), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            **popen,
        )
        try:
            peer, _ = silent.accept()
            with peer:
                time.sleep(0.3)  # from connect() to the read of the greeting
                yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.communicate(timeout=30)


@pytest.mark.parametrize(
    "command",
    [["relay", "check", "s"], ["sync", "s"]],
    ids=["parsed-by-typer", "plain-sync"],
)
def test_ctrl_c_exits_130_with_one_line(
    command: list[str],
    isolated_env: dict[str, str],
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """Interrupted while waiting for a relay that never answers: status 130 and
    ``interrupted``, not click's ``Aborted!`` and 1."""
    with waiting_for_a_silent_relay(command, isolated_env, write_config, tmp_path) as proc:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["escale: error: interrupted"]


def test_a_command_started_with_ctrl_c_ignored_keeps_ignoring_it(
    isolated_env: dict[str, str], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A script's ``escale ... &`` runs with SIGINT ignored: the script's Ctrl-C is not for it."""
    with waiting_for_a_silent_relay(
        ["relay", "check", "s"],
        isolated_env,
        write_config,
        tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    ) as proc:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting: the signal was ignored
