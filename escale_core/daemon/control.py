"""The control socket: how ``escale status``, ``pause``, ``resume`` and ``sync`` talk to the
running daemon. A Unix socket in the state folder, mode 0600 (only its user may connect), one
JSON request per connection and one JSON answer; no TCP port is ever opened."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import stat
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..config import Config
from ..errors import StateError
from ..state import state_dir

if TYPE_CHECKING:
    from .worker import SectionWorker

log = logging.getLogger("escale")

#: the longest a request may take (``sync`` waits for its round up to this)
REQUEST_TIMEOUT = 600.0


#: The longest Unix socket path the kernel takes (``sun_path`` is 108 bytes on Linux, 104 on
#: macOS, with the final NUL).
MAX_SOCKET_PATH = 103


def socket_path(config: Config) -> Path:
    """The control socket of the daemon of ``config``: ``escale.sock`` in the state folder, or,
    when that path is too long for a Unix socket (a deep home folder), a short name derived
    from the state folder in a private per-user folder (``$XDG_RUNTIME_DIR``, else
    ``/tmp/escale-<uid>``)."""
    folder = state_dir(config.globals.state_dir)
    path = folder / "escale.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(folder)).hexdigest()[:20]
    return _private_folder() / f"escale-{digest}.sock"


def _private_folder() -> Path:
    """A short folder only this user can enter, for sockets.

    :raises StateError: it exists but belongs to another user or others may enter it (on a
        shared ``/tmp``, someone else could otherwise answer in the daemon's place)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and len(os.fsencode(runtime)) < MAX_SOCKET_PATH - 40 and os.path.isdir(runtime):
        return Path(runtime)
    folder = Path(tempfile.gettempdir()) / f"escale-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        raise StateError(f"cannot create the socket folder {folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise StateError(
            f"{folder} is not a private folder of this user (owner uid {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):o}): remove it, or set XDG_RUNTIME_DIR, or a shorter "
            "state_dir"
        )
    return folder


class ControlServer(threading.Thread):
    """Answers requests on the control socket until :meth:`close`.

    :param workers: the daemon's workers, by section (read at each request: SIGHUP changes it).
    """

    def __init__(self, path: Path, workers: Callable[[], dict[str, SectionWorker]]) -> None:
        super().__init__(name="escale-control", daemon=True)
        self.path, self.workers = path, workers
        if path.exists() or path.is_symlink():
            path.unlink()  # left by a killed daemon: the pid file's lock says none runs
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: never a moment readable by others
        try:
            self._socket.bind(str(path))
        finally:
            os.umask(old)
        self._socket.listen(8)
        self._closed = False

    def close(self) -> None:
        """Stop answering and remove the socket."""
        self._closed = True
        self._socket.close()
        if self.path.exists():
            self.path.unlink()

    def run(self) -> None:
        """Accept connections, one request each."""
        while not self._closed:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                request = json.loads(_read_line(connection))
                answer = self.answer(request)
            except (ValueError, KeyError, TypeError) as exc:
                answer = {"error": f"bad request: {exc}"}
            connection.sendall(json.dumps(answer).encode() + b"\n")

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The answer to one request: ``status``, ``pause``, ``resume`` or ``sync``, each for
        ``section`` (``None``: every section)."""
        command, name = request["command"], request.get("section")
        workers = self.workers()
        chosen = (
            list(workers.values()) if name is None else [workers[name]] if name in workers else []
        )
        if name is not None and not chosen:
            return {"error": f"the daemon does not sync a section [{name}]"}
        if command == "pause":
            for worker in chosen:
                worker.pause()
        elif command == "resume":
            for worker in chosen:
                worker.resume()
        elif command == "sync":
            ran = {w.section.name: w.round_now(timeout=REQUEST_TIMEOUT) for w in chosen}
            sections = [{**asdict(w.status), "ran": ran[w.section.name]} for w in chosen]
            return {"pid": os.getpid(), "sections": sections}
        elif command != "status":
            return {"error": f"unknown command {command!r}"}
        return {"pid": os.getpid(), "sections": [asdict(w.status) for w in chosen]}


def _read_line(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < 65536:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def ask_daemon(
    config: Config, command: str, section: Optional[str] = None
) -> Optional[dict[str, Any]]:
    """Send ``command`` to the running daemon of ``config``; ``None`` when none answers."""
    path = socket_path(config)
    if not path.exists():
        return None
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(REQUEST_TIMEOUT + 30)
    try:
        client.connect(str(path))
        client.sendall(json.dumps({"command": command, "section": section}).encode() + b"\n")
        answer = json.loads(_read_line(client))
    except (OSError, ValueError):
        return None  # a socket left by a killed daemon
    finally:
        client.close()
    return answer if isinstance(answer, dict) else None
