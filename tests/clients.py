"""Real escale clients for end-to-end tests: each client has its own folder, configuration
and state, shares one relay with the others, and runs as a separate ``escale`` process."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from escale_core.config import load_config
from escale_core.errors import RoundAbandoned
from escale_core.plugins import get_plugins
from escale_core.relay import Relay
from escale_core.session import open_section_relay, sync_section

from .servers import RelayServer

PASSPHRASE = "correct horse battery staple"
MIB = 1 << 20


@dataclass
class Client:
    """One client: ``root`` is its synced folder."""

    name: str
    root: Path
    config: Path
    env: dict[str, str]
    section: str = "shared"

    def command(self, *args: str) -> list[str]:
        """The argument list of ``escale -c CONFIG ARGS``."""
        return [sys.executable, "-m", "escale_core", "-c", str(self.config), *args]

    def sync(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``escale sync SECTION ARGS`` to completion."""
        run = subprocess.run(
            self.command("sync", self.section, *args),
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and run.returncode != 0:
            raise AssertionError(f"{self.name}: exit {run.returncode}\n{run.stdout}\n{run.stderr}")
        return run

    def start_sync(self, *args: str) -> subprocess.Popen[str]:
        """Start ``escale sync`` without waiting."""
        return subprocess.Popen(
            self.command("sync", self.section, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
        )

    def write(self, rel: str, data: bytes | str, mtime: Optional[float] = None) -> Path:
        """Write a file in this client's folder."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path


@dataclass
class Cluster:
    """Clients sharing one relay."""

    base: Path
    relay: str
    env: dict[str, str]
    clients: dict[str, Client] = field(default_factory=dict)

    def add(
        self,
        name: str,
        *,
        encryption: str = "aes-256-gcm",
        extra: str = "",
        passphrase: str = PASSPHRASE,
    ) -> Client:
        """A new client ``name`` with its own folder, configuration and state."""
        home = self.base / name
        root = home / "folder"
        root.mkdir(parents=True)
        key = home / "key"
        key.write_text(passphrase + "\n")
        key.chmod(0o600)  # as 'escale init' writes it: the unwrapped key is then cached
        config = home / "escale.toml"
        config.write_text(
            f'state_dir = "{home / "state"}"\n[shared]\npath = "{root}"\nrelay = "{self.relay}"\n'
            f'client = "{name}"\nencryption = "{encryption}"\npassphrase_file = "{key}"\n{extra}\n',
            encoding="utf-8",
        )
        client = Client(name, root, config, self.env)
        self.clients[name] = client
        return client


#: escale's own local folder (previous versions): never synced, so never compared.
LOCAL_ONLY = ".escale"


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Relative path → (content, mtime_ns) of every file under ``root`` (temp files included,
    so that a leftover shows up as a difference; the local-only ``.escale`` folder left out)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel.split("/")[0] != LOCAL_ONLY:
            out[rel] = (path.read_bytes(), path.stat().st_mtime_ns)
    return out


def versions(root: Path) -> dict[str, bytes]:
    """The previous versions kept in ``root/.escale/versions``: relative name → content."""
    base = root / LOCAL_ONLY / "versions"
    return {
        p.relative_to(base).as_posix(): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def same_tree(a: Path, b: Path) -> bool:
    """Byte-identical trees (names and contents; the local-only ``.escale`` folder left out)."""
    cmp = filecmp.dircmp(a, b, ignore=[LOCAL_ONLY])
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def round_stopped_after(client: Client, limit: int, phases: list[str]) -> None:
    """Run one round of ``client`` in this process that is asked to stop once ``limit``
    bytes moved (as the daemon's worker does on ``escale stop``)."""
    plugins = get_plugins()
    config = load_config(client.config, plugins)
    moved = 0

    def progress(count: int) -> None:
        nonlocal moved
        moved += count
        if moved >= limit:
            raise RoundAbandoned("stopped by request")

    with pytest.raises(RoundAbandoned):
        sync_section(
            config, config.section("shared"), plugins, progress=progress, phase=phases.append
        )


def big_file(client: Client, name: str, mib: int) -> Path:
    """Write ``mib`` MiB of random bytes to ``name`` in the client's folder."""
    path = client.write(name, b"")
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MIB))
    return path


def network_cluster(server: RelayServer, tmp_path: Path, env: dict[str, str]) -> Cluster:
    """Clients sharing a fresh repository folder on ``server``."""
    return Cluster(tmp_path / "clients", server.url(f"repo-{uuid.uuid4().hex[:8]}"), env)


def add(
    cluster: Cluster,
    server: RelayServer,
    name: str,
    extra: str = "",
    *,
    login: Optional[tuple[str, dict[str, object]]] = None,
) -> Client:
    """A new client of ``cluster`` whose section has what ``server`` needs (credentials,
    ``relay_options``).

    :param login: other credential lines and relay options than the server's (wrong ones).
    """
    config, relay_options = login or (server.config, server.relay_options)
    options = "".join(f"{k} = {toml_value(v)}\n" for k, v in relay_options.items())
    table = f"[shared.relay_options]\n{options}" if options else ""
    return cluster.add(name, extra=f"{config}\n{extra}\n{table}")


def relay_check(server: RelayServer, tmp_path: Path, env: dict[str, str]) -> str:
    """``escale relay check`` through a real escale process; its output."""
    cluster = Cluster(tmp_path / "clients", server.url(f"r-{uuid.uuid4().hex[:8]}"), env)
    client = add(cluster, server, "alice")
    run = subprocess.run(
        client.command("relay", "check", "shared"),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def toml_value(value: object) -> str:
    """``value`` as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Backend:
    """A cluster on one relay backend (``file://`` or a network server), for tests whose one
    body runs over several backends."""

    cluster: Cluster
    server: Optional[RelayServer] = None

    def add(self, name: str, extra: str = "") -> Client:
        """A new client on this backend's relay."""
        if self.server is None:
            return self.cluster.add(name, extra=extra)
        return add(self.cluster, self.server, name, extra)


def backend(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, env: dict[str, str]
) -> Backend:
    """The backend ``kind``: ``"file"``, or a server fixture's prefix (``"sftp"`` for
    ``sftp_server``, which ``request`` starts)."""
    if kind == "file":
        return Backend(Cluster(tmp_path / "clients", f"file://{tmp_path}/relay", env))
    server: RelayServer = request.getfixturevalue(f"{kind}_server")
    return Backend(network_cluster(server, tmp_path, env), server)


def open_relay_of(client: Client) -> Relay:
    """The relay of ``client``'s section, opened through escale's relay API (tests damage
    objects with it on any backend)."""
    plugins = get_plugins()
    return open_section_relay(load_config(client.config, plugins).section(client.section), plugins)


def run_escale(
    client: Client, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``escale -c CONFIG ARGS`` as ``client``, to completion."""
    return subprocess.run(
        client.command(*args),
        capture_output=True,
        text=True,
        env=client.env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def converge(clients: list[Client], rounds: int = 4) -> None:
    """Sync every client in turn until their folders are the same and every round is in
    sync (a client that joins late waits a round for a full update)."""
    for _ in range(rounds):
        runs = [client.sync(check=False) for client in clients]
        if all(r.returncode == 0 for r in runs) and all(
            tree(c.root) == tree(clients[0].root) for c in clients[1:]
        ):
            return
    raise AssertionError({c.name: sorted(tree(c.root)) for c in clients})
