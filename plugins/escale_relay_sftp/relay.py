"""SFTP relay: sshfs (asyncssh), with SFTP's quirks handled.

* Publish is ``posix-rename@openssh.com`` (atomic, overwrites), through ``fs.mv``.
* Create-if-absent is an ``O_EXCL`` open.
* Keys: ``relay_options`` ``client_keys = ["~/.ssh/id_ed25519"]`` (or ``key_filename``);
  ``known_hosts`` a path, or ``false`` to accept any host key (tests only).
* ``PermissionDenied`` means refused credentials; a lost connection is retried.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from typing import Any, Optional

from escale_relay_fsspec.relay import FsspecRelay

from escale_core.address import RelayAddress
from escale_core.errors import (
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayUnavailableError,
)
from escale_core.relay import Capabilities


class SftpRelay(FsspecRelay):
    """Objects under a folder of an SFTP server."""

    capabilities = Capabilities(atomic_rename=True, exclusive_create=True)

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from sshfs import SSHFileSystem

        options.setdefault("username", address.username or os.environ.get("USER") or "root")
        if address.password and "password" not in options:
            options["password"] = address.password
        keys = options.pop("key_filename", None)
        if keys is not None:
            options.setdefault("client_keys", [keys] if isinstance(keys, str) else keys)
        if "client_keys" in options:
            options["client_keys"] = [os.path.expanduser(k) for k in options["client_keys"]]
        if options.get("known_hosts") in (False, "none", ""):
            options["known_hosts"] = None
        elif isinstance(options.get("known_hosts"), str):
            options["known_hosts"] = os.path.expanduser(options["known_hosts"])
        options.setdefault("connect_timeout", 30)
        self._folders: set[str] = set()
        fs = SSHFileSystem(
            address.host, port=address.port or 22, skip_instance_cache=True, **options
        )
        return fs, address.path or "/"

    def makedirs(self, folder: str) -> None:
        if folder not in self._folders:
            self.fs.makedirs(folder, exist_ok=True)
            self._folders.add(folder)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        import asyncssh

        path = self._path(name)
        with self.errors(f"creating {name}"):
            self.makedirs(posixpath.dirname(path))
            try:
                with self.fs.open(path, "xb") as out:
                    out.write(data)
                return True
            except (FileExistsError, asyncssh.SFTPFailure):
                return False

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        import asyncssh

        where = f"{what} on {self.address.display()}"
        if isinstance(exc, asyncssh.PermissionDenied) or (
            isinstance(exc, PermissionError) and "for user" in str(exc)  # sshfs's wrapping
        ):
            return RelayAuthError(
                f"{where}: login refused; check the user, password or client_keys"
            )
        if isinstance(exc, (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath)):
            return RelayNotFoundError(f"{where}: not found")
        if isinstance(exc, asyncssh.SFTPPermissionDenied):
            return RelayAuthError(f"{where}: permission denied on the server")
        if isinstance(
            exc, (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.SFTPNoConnection)
        ):
            return RelayUnavailableError(f"{where}: {type(exc).__name__}: {exc}")
        if isinstance(exc, (asyncssh.Error, asyncssh.SFTPError)):
            return RelayError(f"{where}: {exc}")
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.fs.client.close()
