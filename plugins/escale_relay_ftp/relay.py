"""FTP relay: fsspec's FTP filesystem (ftplib), with FTP's quirks handled.

* Publish is RNFR/RNTO (atomic on the server's filesystem, overwrites).
* There is no create-if-absent: escale's locks fall back to write, wait, re-list.
* The listing cache goes stale: it is invalidated before every listing (by FsspecRelay).
* ``550`` means "no such file", ``530`` a refused login, ``4xx`` a transient failure.
* Blocks of 8 MiB: fsspec opens a data connection per block (64 KiB by default).
"""

from __future__ import annotations

import contextlib
import ftplib
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

BLOCK_SIZE = 8 << 20


class FtpRelay(FsspecRelay):
    """Objects under a folder of an FTP server."""

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from fsspec.implementations.ftp import FTPFileSystem

        options.setdefault("username", address.username or "anonymous")
        if address.password and "password" not in options:
            options["password"] = address.password
        options.setdefault("block_size", BLOCK_SIZE)
        options.setdefault("timeout", 30)
        self._folders: set[str] = set()
        fs = FTPFileSystem(
            address.host, port=address.port or 21, tls=address.scheme == "ftps", **options
        )
        return fs, address.path or "/"

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        where = f"{what} on {self.address.display()}"
        if isinstance(exc, ftplib.error_perm):
            code = str(exc)[:3]
            if code == "530":
                return RelayAuthError(
                    f"{where}: login refused ({exc}); check the username and password"
                )
            if code == "550":
                return RelayNotFoundError(f"{where}: not found ({exc})")
            return RelayError(f"{where}: {exc}")
        if isinstance(exc, (ftplib.error_temp, EOFError)):
            return RelayUnavailableError(f"{where}: {exc or 'connection closed'}")
        if isinstance(exc, ftplib.Error):
            return RelayError(f"{where}: {exc}")
        return None

    def reconnect(self) -> None:
        super().reconnect()
        with contextlib.suppress(Exception):
            self.fs._connect()  # a dropped control connection is not reopened by ftplib

    def makedirs(self, folder: str) -> None:
        # every MKD is a round trip: remember what exists (escale never deletes folders)
        if folder in self._folders:
            return
        parts = [p for p in folder.split("/") if p]
        path = "/" if folder.startswith("/") else ""
        for part in parts:
            path = posixpath.join(path, part)
            if path in self._folders:
                continue
            with contextlib.suppress(ftplib.error_perm):  # 550: exists already
                self.fs.ftp.mkd(path)
            self._folders.add(path)
        self.fs.invalidate_cache()
