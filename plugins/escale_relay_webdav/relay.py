"""WebDAV relay: webdav4's fsspec filesystem, with WebDAV's quirks handled.

* Publish is a server-side ``MOVE`` with ``Overwrite: T`` (``fs.mv`` would COPY then DELETE,
  and refuse an existing target); a ``PUT`` writes straight into its target, so objects are
  always uploaded under a temporary name first.
* Folders are created once per relay instance: ``makedirs`` before every upload costs a
  ``PROPFIND`` of the parent, which made uploads into a big folder quadratic.
* ``401``/``403`` mean refused credentials, ``404``/``409`` a missing object or folder,
  ``423`` (locked), ``5xx`` and connection errors a transient failure (retried).
* No atomic create-if-absent is used: escale's locks fall back to write, wait, re-list.
"""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
from collections.abc import Iterable
from typing import Any, Optional

from escale_relay_fsspec.relay import FsspecRelay

from escale_core.address import RelayAddress
from escale_core.errors import (
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayUnavailableError,
)

SPOOL = 8 << 20  # bytes of an object kept in memory before spooling to a temporary file


class WebdavRelay(FsspecRelay):
    """Objects under a WebDAV collection."""

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from webdav4.fsspec import WebdavFileSystem

        scheme = "https" if address.scheme == "webdavs" else "http"
        port = f":{address.port}" if address.port else ""
        user = options.pop("username", address.username)
        password = options.pop("password", address.password)
        auth = (user, password or "") if user else None
        options.setdefault("timeout", 60)
        fs = WebdavFileSystem(f"{scheme}://{address.host}{port}", auth=auth, **options)
        self._folders: set[str] = set()
        return fs, (address.path or "/").strip("/") or ""

    def _path(self, name: str) -> str:
        root = self.root.strip("/")
        return posixpath.join(root, name) if root else name

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        # webdav4's open("wb") uploads when closed, even after an error (and again when the
        # file object is collected): spool here, upload only complete objects.
        path = self._path(name)
        temp = self._temp(path)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL) as spool:
            for chunk in chunks:
                spool.write(chunk)
            size = spool.tell()
            with self.errors(f"writing {name}"):
                self.makedirs(posixpath.dirname(path))
                try:
                    spool.seek(0)
                    self.fs.client.upload_fileobj(spool, temp, overwrite=True, size=size)
                    self.publish(temp, path)
                except BaseException:
                    self._discard(temp)
                    raise

    def publish(self, temp: str, final: str) -> None:
        self.fs.client.move(temp, final, overwrite=True)

    def makedirs(self, folder: str) -> None:
        path = ""
        for part in [p for p in folder.split("/") if p]:
            path = posixpath.join(path, part)
            if path in self._folders:
                continue
            with contextlib.suppress(Exception):  # 405: exists already
                self.fs.client.mkdir(path)
            self._folders.add(path)

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        import httpx
        from webdav4.client import HTTPError, ResourceNotFound

        where = f"{what} on {self.address.display()}"
        if isinstance(exc, ResourceNotFound):
            return RelayNotFoundError(f"{where}: not found")
        status = None
        response = getattr(exc, "response", None)
        if response is not None:
            status = getattr(response, "status_code", None)
        if isinstance(
            exc,
            (
                httpx.ConnectError,
                httpx.TimeoutException,
                httpx.NetworkError,
                httpx.RemoteProtocolError,
            ),
        ):
            return RelayUnavailableError(f"{where}: {type(exc).__name__}: {exc}")
        if status in (401, 403):
            return RelayAuthError(
                f"{where}: access refused (HTTP {status}); check the username and password"
            )
        if status in (404, 409):
            return RelayNotFoundError(f"{where}: not found (HTTP {status})")
        if status == 423 or (status is not None and status >= 500):
            return RelayUnavailableError(f"{where}: HTTP {status}")
        if isinstance(exc, (HTTPError, httpx.HTTPError)):
            return RelayError(f"{where}: {exc}")
        return None
