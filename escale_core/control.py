"""The daemon's control socket as its clients see it: where it is and how to ask it.

Below both the daemon (which serves the socket, :mod:`escale_core.daemon.control`) and the
operations (which refuse to run on a section a running daemon syncs): neither imports the
other. A Unix socket in the state folder, mode 0600, one JSON request per connection and one
JSON answer; no TCP port is ever opened."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any, Optional

from .config import Config
from .errors import StateError
from .state import state_dir

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


def read_line(connection: socket.socket) -> bytes:
    """One JSON line of a connection (at most 64 KiB: a bounded read)."""
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
        answer = json.loads(read_line(client))
    except (OSError, ValueError):
        return None  # a socket left by a killed daemon
    finally:
        client.close()
    return answer if isinstance(answer, dict) else None
