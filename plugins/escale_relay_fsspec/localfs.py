"""The few fsspec filesystem methods :class:`~escale_relay_fsspec.relay.FsspecRelay` calls, on
plain ``os`` calls, for relays in a local folder or a locally mounted storage.

Importing fsspec costs about 50 ms and 8 MiB at every escale start (it imports asyncio), more
than a whole idle round of a small folder; a local relay needs none of it.
"""

from __future__ import annotations

import os
import stat
from typing import IO, Any, Optional


class LocalFileSystem:
    """Absolute ``/``-separated paths on the local filesystem, fsspec-style."""

    def invalidate_cache(self, path: Optional[str] = None) -> None:
        """Nothing is cached."""

    def find(self, path: str, detail: bool = True) -> dict[str, dict[str, Any]]:
        """Every file below ``path`` (recursively) with its type, size and mtime.

        :raises FileNotFoundError: ``path`` does not exist (an empty folder gives ``{}``).
        """
        found: dict[str, dict[str, Any]] = {}
        pending = [path.rstrip("/") or "/"]
        while pending:
            folder = pending.pop()
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):  # escale writes no links: no loops
                        pending.append(entry.path)
                        continue
                    try:
                        info = entry.stat()
                    except FileNotFoundError:  # deleted (or a dangling link) since listed
                        continue
                    found[entry.path] = _info(entry.path, info)
        return found

    def info(self, path: str) -> dict[str, Any]:
        """Type, size and mtime of ``path``."""
        return _info(path, os.stat(path))

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return os.path.exists(path)

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        """A binary file object."""
        if "b" not in mode:
            raise ValueError(f"only binary modes are supported, not {mode!r}")
        handle: IO[bytes] = open(path, mode)  # noqa: SIM115 - the caller closes it
        return handle

    def cat_file(self, path: str) -> bytes:
        """The content of ``path``."""
        with open(path, "rb") as source:
            return source.read()

    def pipe_file(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path``."""
        with open(path, "wb") as out:
            out.write(data)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create ``path`` and its parents."""
        os.makedirs(path, exist_ok=exist_ok)

    def mv(self, source: str, destination: str) -> None:
        """Rename, replacing ``destination`` atomically."""
        os.replace(source, destination)

    def rm_file(self, path: str) -> None:
        """Delete the file ``path``."""
        os.remove(path)


def _info(path: str, info: os.stat_result) -> dict[str, Any]:
    kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
    return {"name": path, "type": kind, "size": info.st_size, "mtime": info.st_mtime}
