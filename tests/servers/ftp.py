"""A pyftpdlib server as a separate process (fixtures ``ftp_server``, ``ftp_server_own``)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import RelayServer, ServerProcess, free_port

USER, PASSWORD = "relay", "ftp-secret-123"


def start_ftp(root: Path, log: Path) -> RelayServer:
    """Start pyftpdlib serving ``root`` to ``relay``/PASSWORD with write access."""
    if importlib.util.find_spec("pyftpdlib") is None:
        pytest.skip("pyftpdlib is not installed (pip install -e '.[test]')")
    port = free_port()
    server = ServerProcess(
        [
            sys.executable,
            "-m",
            "pyftpdlib",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-u",
            USER,
            "-P",
            PASSWORD,
            "-d",
            str(root),
            "-w",
        ],
        port,
        log,
    ).start()
    return RelayServer(
        "ftp", server, f"ftp://{USER}@127.0.0.1:{port}", config=f'password = "{PASSWORD}"'
    )


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One FTP server for the session."""
    base = tmp_path_factory.mktemp("ftp")
    (base / "root").mkdir()
    server = start_ftp(base / "root", base / "server.log")
    yield server
    server.server.stop()


@pytest.fixture
def ftp_server_own(tmp_path: Path) -> Iterator[RelayServer]:
    """A private FTP server that a test may kill and restart."""
    (tmp_path / "ftp-root").mkdir()
    server = start_ftp(tmp_path / "ftp-root", tmp_path / "ftp.log")
    yield server
    server.server.stop()
