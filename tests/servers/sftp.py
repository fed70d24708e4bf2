"""SFTP test servers as separate processes (fixtures ``sftp_server``, ``sftp_server_own``,
``sftp_password_server``).

* OpenSSH's ``sshd -D -e -f CONFIG`` on a free port, with its own host key and key
  authentication for the current user (an ed25519 key pair made in the test folder). Password
  authentication in sshd needs a real system account, so it is not used.
* Where sshd is missing (or ``ESCALE_TEST_SFTP=asyncssh``), an asyncssh SFTP server: this
  module run as a script (``python -m tests.servers.sftp``), SFTP only, chrooted to a folder,
  password authentication. ``sftp_password_server`` always uses it, for password tests.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from . import RelayServer, ServerProcess, on_free_port

SSHD = "/usr/sbin/sshd"
USER, PASSWORD = "relay", "sftp-secret-123"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SftpServer(RelayServer):
    """A running SFTP server.

    :param login: credentials to pass as relay options when opening a relay directly.
    :param host_key: the server's public host key (for a ``known_hosts`` line).
    """

    files: Path = Path()  # always set: the files of a local SFTP server
    login: dict[str, object] = field(default_factory=dict)
    host_key: Path = Path()


def _need_sshfs() -> None:
    if importlib.util.find_spec("sshfs") is None:
        pytest.skip("sshfs is not installed (pip install -e '.[test]')")


def start_sshd(base: Path) -> SftpServer:
    """OpenSSH sshd on a free port, serving SFTP to the current user with a fresh key."""
    _need_sshfs()
    if not os.access(SSHD, os.X_OK) or not shutil.which("ssh-keygen"):
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    files = base / "sftp-root"
    files.mkdir(exist_ok=True)
    for name in ("host_key", "client_key"):
        if not (base / name).exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / name)], check=True
            )
    (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    config = base / "sshd_config"

    def start_on(port: int) -> ServerProcess:
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\n"
            f"PidFile {base / 'sshd.pid'}\nAuthorizedKeysFile {base / 'authorized_keys'}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nPermitRootLogin yes\n"
            "UsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
            "MaxStartups 50\nMaxSessions 50\nLogLevel VERBOSE\n"
        )
        return ServerProcess([SSHD, "-D", "-e", "-f", str(config)], port, base / "sshd.log").start()

    server = on_free_port(start_on)
    port = server.port
    return SftpServer(
        "sftp",
        server,
        f"sftp://{getpass.getuser()}@127.0.0.1:{port}{files}",
        relay_options={"client_keys": [str(base / "client_key")], "known_hosts": "none"},
        files=files,
        host_key=base / "host_key.pub",
    )


def start_asyncssh(base: Path, *, posix_rename: bool = True) -> SftpServer:
    """The asyncssh SFTP server of this module, with password authentication."""
    _need_sshfs()
    files = base / "sftp-root"
    files.mkdir(exist_ok=True)
    password_file = base / "sftp-password"
    password_file.write_text(f"{USER}:{PASSWORD}\n")  # the original Escale's format
    if not (base / "host_key").exists():
        import asyncssh

        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(str(base / "host_key"))
        key.write_public_key(str(base / "host_key.pub"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def start_on(port: int) -> ServerProcess:
        command = [sys.executable, "-m", "tests.servers.sftp", "--port", str(port)]
        command += ["--root", str(files), "--user", USER, "--password", PASSWORD]
        command += ["--host-key", str(base / "host_key")]
        command += [] if posix_rename else ["--no-posix-rename"]
        return ServerProcess(command, port, base / "asyncssh.log", env).start()

    server = on_free_port(start_on)
    port = server.port
    return SftpServer(
        "sftp",
        server,
        f"sftp://{USER}@127.0.0.1:{port}",
        config=f'password_file = "{password_file}"',
        relay_options={"known_hosts": "none"},
        files=files,
        login={"password": PASSWORD},
        host_key=base / "host_key.pub",
    )


def start_sftp(base: Path) -> SftpServer:
    """sshd where installed, else the asyncssh server."""
    if os.environ.get("ESCALE_TEST_SFTP") != "asyncssh" and os.access(SSHD, os.X_OK):
        return start_sshd(base)
    return start_asyncssh(base)


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    """One SFTP server for the session."""
    server = start_sftp(tmp_path_factory.mktemp("sftp"))
    yield server
    server.server.stop()


@pytest.fixture
def sftp_server_own(tmp_path: Path) -> Iterator[SftpServer]:
    """A private SFTP server that a test may kill and restart (same port, same files)."""
    server = start_sftp(tmp_path)
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def sftp_password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    """The asyncssh server, password authentication (``password_file`` in ``config``)."""
    server = start_asyncssh(tmp_path_factory.mktemp("sftp-password"))
    yield server
    server.server.stop()


def main(argv: Optional[list[str]] = None) -> None:
    """Serve SFTP only, chrooted to ``--root``, to one user with a password."""
    import asyncio

    import asyncssh

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--host-key", required=True)
    parser.add_argument("--no-posix-rename", action="store_true")
    args = parser.parse_args(argv)
    if args.no_posix_rename:  # as some servers: plain rename only, which never overwrites
        handler = asyncssh.sftp.SFTPServerHandler
        handler._extensions = [e for e in handler._extensions if b"posix-rename" not in e[0]]

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return bool(username == args.user and password == args.password)

    async def serve() -> None:
        await asyncssh.listen(
            "127.0.0.1",
            args.port,
            server_host_keys=[args.host_key],
            server_factory=Server,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=args.root.encode()),
            allow_scp=False,
        )
        print(f"asyncssh SFTP server on 127.0.0.1:{args.port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
