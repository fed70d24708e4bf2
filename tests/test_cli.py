"""The command line: every command of the contract, versions, exit statuses, one-line errors."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

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
    """Interrupted while waiting for a relay that never answers (a socket that accepts and
    says nothing): status 130 and ``interrupted``, not click's ``Aborted!`` and 1."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    (tmp_path / "A").mkdir()
    config = write_config(
        f"""
        [s]
        path = "{{tmp}}/A"
        relay = "ftp://127.0.0.1:{port}/r"
        passphrase = "pw"
        """
    )
    with silent:
        proc = subprocess.Popen(
            [sys.executable, "-m", "escale_core", "-c", str(config), *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=isolated_env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the client waits for the server's greeting
            silent.settimeout(0.1)
            try:
                peer, _ = silent.accept()
                break
            except socket.timeout:
                assert proc.poll() is None, proc.communicate()
        else:
            pytest.fail("the client never connected")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        peer.close()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["escale: error: interrupted"]


def test_a_command_started_with_ctrl_c_ignored_keeps_ignoring_it(
    isolated_env: dict[str, str], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """A script's ``escale ... &`` runs with SIGINT ignored: the script's Ctrl-C is not for it."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
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
            [sys.executable, "-m", "escale_core", "-c", str(config), "relay", "check", "s"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=isolated_env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        silent.settimeout(30)
        peer, _ = silent.accept()  # it waits for the server's greeting now
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting: the signal was ignored
        proc.terminate()
        proc.communicate(timeout=30)
        peer.close()
