"""rclone as relay storage: ``rclone serve webdav|sftp|ftp`` processes as the remote servers of
the rclone relay, reached through a generated ``rclone.conf``. Fixtures ``rclone_server``
(one per session) and ``rclone_server_own`` (private, for tests that kill and restart it)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import RelayServer, ServerProcess, on_free_port

RCLONE = "/usr/bin/rclone"
USER, PASSWORD = "relay", "rclone-secret-123"
#: Repositories live under this folder of the served tree (url_prefix ends with it).
BASE = "repos"


def rclone_binary() -> str:
    """The rclone program, or a skip with the reason."""
    found = shutil.which("rclone") or (RCLONE if Path(RCLONE).exists() else None)
    if found is None:
        pytest.skip("rclone is not installed (apt install rclone; .ci/servers.sh installs it)")
    return found


def obscured(password: str) -> str:
    """``password`` as rclone's configuration stores it (``rclone obscure``)."""
    return subprocess.run(
        [rclone_binary(), "obscure", password], check=True, capture_output=True, text=True
    ).stdout.strip()


def serve(kind: str, files: Path, base: Path) -> ServerProcess:
    """``rclone serve KIND`` of ``files`` to USER/PASSWORD on a free port of 127.0.0.1."""
    empty = base / "serve.conf"
    empty.touch()

    def start(port: int) -> ServerProcess:
        command = [rclone_binary(), "serve", kind, str(files), "--config", str(empty)]
        command += ["--addr", f"127.0.0.1:{port}", "--user", USER, "--pass", PASSWORD]
        if kind == "sftp":  # its host key, generated once, in the test's folder
            command += ["--key", str(host_key(base))]
        return ServerProcess(command, port, base / f"rclone-serve-{kind}.log").start()

    return on_free_port(start)


def host_key(base: Path) -> Path:
    key = base / "ssh_host_ed25519_key"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def remote_section(name: str, kind: str, port: int) -> str:
    """The rclone.conf section of a remote reaching a ``serve(kind)`` server."""
    login = f"user = {USER}\npass = {obscured(PASSWORD)}\n"
    if kind == "webdav":
        return f"[{name}]\ntype = webdav\nurl = http://127.0.0.1:{port}/\nvendor = other\n{login}"
    return f"[{name}]\ntype = {kind}\nhost = 127.0.0.1\nport = {port}\n{login}"


def start_rclone(root: Path, base: Path, kind: str = "webdav") -> RelayServer:
    """A ``rclone serve KIND`` server of ``root`` and the rclone relay's view of it: remote
    ``served`` in a generated configuration (repositories under ``root/BASE``)."""
    (root / BASE).mkdir(parents=True, exist_ok=True)
    server = serve(kind, root, base)
    config = base / "rclone.conf"
    config.write_text(remote_section("served", kind, server.port), encoding="utf-8")
    return RelayServer(
        "rclone",
        server,
        f"rclone://served/{BASE}",
        relay_options={"config": str(config)},
        files=root / BASE,
    )


@pytest.fixture(scope="session")
def rclone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One ``rclone serve webdav`` for the session, as an rclone remote."""
    base = tmp_path_factory.mktemp("rclone")
    server = start_rclone(base / "files", base)
    yield server
    server.server.stop()


@pytest.fixture
def rclone_server_own(tmp_path: Path) -> Iterator[RelayServer]:
    """A private ``rclone serve webdav`` that the test may kill and restart."""
    base = tmp_path / "rclone-server"
    base.mkdir()
    server = start_rclone(base / "files", base)
    yield server
    server.server.stop()
