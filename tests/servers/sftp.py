"""OpenSSH's sshd as a separate process, key authentication (fixtures ``sftp_server``,
``sftp_server_own``). Skipped where sshd is not installed (CI installs openssh-server)."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import RelayServer, ServerProcess, free_port

SSHD = "/usr/sbin/sshd"


def start_sftp(base: Path) -> RelayServer:
    """Start sshd on a free port, serving SFTP to the current user with a fresh key."""
    if not os.access(SSHD, os.X_OK) or not shutil.which("ssh-keygen"):
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    if importlib_missing("sshfs"):
        pytest.skip("sshfs is not installed (pip install -e '.[test]')")
    root = base / "sftp-root"
    root.mkdir(exist_ok=True)
    for name in ("host_key", "client_key"):
        if not (base / name).exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)], check=True
            )
    (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
    port = free_port()
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {base / 'host_key'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {base / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "PermitRootLogin yes",
                "UsePAM no",
                "StrictModes no",
                "Subsystem sftp internal-sftp",
                "MaxStartups 50",
                "MaxSessions 50",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(exist_ok=True) if os.geteuid() == 0 else None
    server = ServerProcess([SSHD, "-D", "-e", "-f", str(config)], port, base / "sshd.log").start()
    user = getpass.getuser()
    return RelayServer(
        "sftp",
        server,
        f"sftp://{user}@127.0.0.1:{port}{root}",
        relay_options={"client_keys": [str(base / "client_key")], "known_hosts": "none"},
    )


def importlib_missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One sshd for the session."""
    server = start_sftp(tmp_path_factory.mktemp("sftp"))
    yield server
    server.server.stop()


@pytest.fixture
def sftp_server_own(tmp_path: Path) -> Iterator[RelayServer]:
    """A private sshd that a test may kill and restart."""
    server = start_sftp(tmp_path)
    yield server
    server.server.stop()
