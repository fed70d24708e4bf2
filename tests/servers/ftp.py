"""A pyftpdlib server as a separate process.

Fixtures: ``ftp_server`` (one per session), ``ftp_server_own`` (a private one that a fault test
may kill and restart on the same port and folder) and ``ftps_server`` (explicit TLS with a
self-signed certificate; needs pyOpenSSL in the server's Python, else skipped).

Repositories live under ``/repos`` of the server: ``server.url(folder)`` is a fresh one.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import RelayServer, ServerProcess, free_port, self_signed_certificate

USER, PASSWORD = "relay", "ftp-secret-123"


def start_ftp(root: Path, base: Path, *, tls: bool = False) -> RelayServer:
    """Start pyftpdlib serving ``root`` to USER/PASSWORD with write access.

    Credentials go in a ``password_file`` holding ``user:password`` (the original Escale's
    form); with ``tls``, the server requires TLS on both connections and the client trusts its
    self-signed certificate through relay option ``ca_file``.
    """
    if importlib.util.find_spec("pyftpdlib") is None:
        pytest.skip("pyftpdlib is not installed (pip install -e '.[test]')")
    command = [sys.executable, "-m", "pyftpdlib", "-i", "127.0.0.1", "-u", USER, "-P", PASSWORD]
    command += ["-d", str(root), "-w"]
    options: dict[str, object] = {}
    if tls:
        if importlib.util.find_spec("OpenSSL") is None:
            pytest.skip("pyftpdlib's FTPS needs pyOpenSSL (pip install pyopenssl)")
        cert, key = self_signed_certificate(base)
        command += ["--tls", "--certfile", str(cert), "--keyfile", str(key)]
        command += ["--tls-control-required", "--tls-data-required"]
        options["ca_file"] = str(cert)
    (root / "repos").mkdir(exist_ok=True)
    secret = base / "ftp-password"
    secret.write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
    for attempt in range(3):  # another process may take the free port before the server does
        port = free_port()
        try:
            server = ServerProcess([*command, "-p", str(port)], port, base / "ftp.log").start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    scheme = "ftps" if tls else "ftp"
    return RelayServer(
        scheme,
        server,
        f"{scheme}://{USER}@127.0.0.1:{port}/repos",
        config=f'password_file = "{secret}"',
        relay_options=options,
        files=root / "repos",
    )


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One FTP server for the session."""
    base = tmp_path_factory.mktemp("ftp")
    (base / "root").mkdir()
    server = start_ftp(base / "root", base)
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def ftps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One FTP server requiring explicit TLS, for the session."""
    base = tmp_path_factory.mktemp("ftps")
    (base / "root").mkdir()
    server = start_ftp(base / "root", base, tls=True)
    yield server
    server.server.stop()


@pytest.fixture
def ftp_server_own(tmp_path: Path) -> Iterator[RelayServer]:
    """A private FTP server that a test may kill and restart (same port, same folder).

    Its files are in ``tmp_path / "ftp-root"``, its log in ``tmp_path / "ftp.log"``.
    """
    (tmp_path / "ftp-root").mkdir()
    server = start_ftp(tmp_path / "ftp-root", tmp_path)
    yield server
    server.server.stop()
