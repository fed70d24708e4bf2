"""Real servers for relay tests, started on 127.0.0.1 on free ports and stopped by PID.

Each backend module (``webdav``, ``ftp``, ``sftp``, ``s3``) starts its server as a separate
process with :class:`ServerProcess` and offers pytest fixtures; a test that needs a server
that cannot be installed is skipped with the reason (CI installs all of them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, TypeVar

S = TypeVar("S", bound="ServerProcess")


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def on_free_port(start: Callable[[int], S], attempts: int = 3) -> S:
    """``start(port)`` on a port that was free a moment ago; another port when another process
    took it before the server bound it (``start`` raises RuntimeError, as
    :meth:`ServerProcess.start` does)."""
    for attempt in range(attempts):
        try:
            return start(free_port())
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def children(pid: int) -> list[int]:
    """Descendant PIDs of ``pid`` (from /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class ServerProcess:
    """A server started as a child process, logging to a file.

    :param command: the command line.
    :param port: the port it listens on (127.0.0.1).
    :param log: its stdout and stderr.
    """

    command: list[str]
    port: int
    log: Path
    env: Optional[dict[str, str]] = None
    process: Optional[subprocess.Popen[bytes]] = field(default=None, init=False)

    def start(self, timeout: float = 20.0) -> ServerProcess:
        """Start it and wait until it accepts connections."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                # its own process group: a kill reaches the workers it forks meanwhile too
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}: "
                    f"{self.log.read_text(errors='replace')[-2000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s: {' '.join(self.command)}")

    def stop(self) -> None:
        """Stop exactly the process started (and its children, e.g. sshd's per-connection ones)."""
        if self.process is None or self.process.poll() is not None:
            return
        kids = children(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._kill_group()

    def kill(self) -> None:
        """SIGKILL, as a crash would (for fault tests), to the server and every process it
        forked. The server is stopped first: a server that forks workers (Apache) could
        otherwise fork one between the listing of its children and its own kill, and that
        orphan would go on serving the port."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGSTOP)
        for pid in children(self.process.pid):  # those that left the group too (sshd's)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._kill_group()
        self.process.kill()
        self.process.wait(10)

    def _kill_group(self) -> None:
        """SIGKILL whatever is left of the server's process group (its session)."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def restart(self) -> ServerProcess:
        """Start again on the same port (after :meth:`kill` or :meth:`stop`)."""
        self.stop()
        return self.start()


@dataclass
class RelayServer:
    """What relay tests need of a running server.

    :param name: backend name (``webdav``, ``ftp``, ``sftp``, ``s3``).
    :param server: the server process.
    :param url_prefix: relay URL up to the folder of repositories, e.g. ``webdav://u@127.0.0.1:P``.
    :param config: extra TOML lines for a section (credentials, ``[s.relay_options]`` excluded).
    :param relay_options: the section's ``relay_options`` table.
    :param files: the folder on disk that ``url_prefix`` names (``url(f)`` is ``files / f``),
        when the server keeps its objects as files.
    """

    name: str
    server: ServerProcess
    url_prefix: str
    config: str = ""
    relay_options: dict[str, object] = field(default_factory=dict)
    files: Optional[Path] = None

    def url(self, folder: str) -> str:
        """The relay URL of repository ``folder``."""
        return f"{self.url_prefix}/{folder}"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, signed by its own key (PEM files in ``folder``)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
