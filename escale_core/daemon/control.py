"""The control socket: how ``escale status``, ``pause``, ``resume`` and ``sync`` talk to the
running daemon. A Unix socket in the state folder, mode 0600 (only its user may connect), one
JSON request per connection and one JSON answer; no TCP port is ever opened."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..control import (  # re-exported: the control socket's client lives below ops and daemon
    MAX_SOCKET_PATH,
    REQUEST_TIMEOUT,
    ask_daemon,
    read_line,
    socket_path,
)

if TYPE_CHECKING:
    from .worker import SectionWorker

log = logging.getLogger("escale")

__all__ = [
    "MAX_SOCKET_PATH",
    "REQUEST_TIMEOUT",
    "ControlServer",
    "ask_daemon",
    "socket_path",
]


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
                request = json.loads(read_line(connection))
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
