"""The command line: every command of the contract, versions, exit statuses, one-line errors."""

from __future__ import annotations

import re

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
