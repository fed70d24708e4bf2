"""escale clients with real daemons: each has its own configuration, state folder and synced
folder, and its daemon is started with ``escale start`` and stopped with ``escale stop``.

Whether a daemon is idle is asked on its control socket (the request ``escale status --json``
sends for its ``daemon`` part): the full ``status`` command also scans the local folder and
reads the relay, which costs a second of CPU on 100,000 files and would disturb what is
measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from _daemon_common import clean_env, wait_until
from _measure import BenchmarkError, CommandFailed
from _tools import PASSPHRASE, toml_value

ESCALE = [sys.executable, "-m", "escale_core"]
SECTION = "s"


@dataclass
class EscaleClient:
    """One client: ``folder`` is synced through ``relay``; ``home`` holds the rest."""

    name: str
    home: Path
    relay: str
    extra: str = ""
    pid: Optional[int] = None

    @property
    def folder(self) -> Path:
        return self.home / "folder"

    @property
    def config(self) -> Path:
        return self.home / "escale.toml"

    @property
    def state(self) -> Path:
        return self.home / "state"

    def write_config(self) -> None:
        """The TOML configuration: one section ``s``, encryption on, ``extra`` lines last
        (they may open the ``[s.relay_options]`` table)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.home / "key"
        key.write_text(PASSPHRASE + "\n")
        self.config.write_text(
            f"state_dir = {toml_value(self.state)}\n"
            f"[{SECTION}]\n"
            f"path = {toml_value(self.folder)}\n"
            f"relay = {toml_value(self.relay)}\n"
            f"client = {toml_value(self.name)}\n"
            f"passphrase_file = {toml_value(key)}\n"
            'encryption = "aes-256-gcm"\n'
            f"{self.extra}"
        )

    def run(self, *args: str, timeout: float = 3600) -> str:
        """Run ``escale -c CONFIG ARGS``; return its stdout, raise on failure."""
        command = [*ESCALE, "-c", str(self.config), *args]
        done = subprocess.run(
            command, capture_output=True, text=True, env=clean_env(), timeout=timeout
        )
        if done.returncode:
            raise CommandFailed(command, done.returncode, done.stderr[-4000:])
        return done.stdout

    def start(self) -> int:
        """``escale start``; the daemon's pid (printed as ``... (pid N)``)."""
        out = self.run("start", timeout=60)
        self.pid = int(out.rsplit("pid ", 1)[1].split(")")[0])
        return self.pid

    def stop(self) -> None:
        """``escale stop``; SIGKILL by pid if the daemon still runs after it."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        with contextlib.suppress(BenchmarkError, subprocess.TimeoutExpired):
            self.run("stop", timeout=60)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def daemon_status(self) -> Optional[dict[str, Any]]:
        """The daemon's view of section ``s`` (state, rounds...), ``None`` if it does not answer."""
        path = self.state / "escale.sock"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(30)
                client.connect(str(path))
                client.sendall(b'{"command": "status", "section": null}\n')
                data = b""
                while not data.endswith(b"\n"):
                    chunk = client.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            answer = json.loads(data)
        except (OSError, ValueError):
            return None
        sections = answer.get("sections", []) if isinstance(answer, dict) else []
        return next((s for s in sections if s.get("section") == SECTION), None)

    def idle(self) -> bool:
        """A first round done, the last one in sync, nothing running or moving now."""
        status = self.daemon_status()
        return bool(
            status
            and status["rounds"] >= 1
            and status["state"] == "idle"
            and status["transfer"] is None
            and status["last_in_sync"]
        )


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_daemons(clients: list[EscaleClient], timeout: float) -> float:
    """Start each client's daemon; return the seconds until all are idle (first rounds done)."""
    start = time.monotonic()
    for client in clients:
        client.start()
    wait_until(
        lambda: all(c.idle() for c in clients), "the daemons' first rounds", timeout, step=0.5
    )
    return time.monotonic() - start


def make_pair(base: Path, relay: str, extra: str) -> list[EscaleClient]:
    """Clients A and B on ``relay``, each synced once in the foreground (untimed) so the
    relay's repository exists before either daemon starts."""
    clients = [EscaleClient(name, base / name, relay, extra) for name in ("A", "B")]
    for client in clients:
        client.write_config()
        client.run("-q", "sync", SECTION)
    return clients
