"""WebDAV relay: webdav4's fsspec filesystem, with WebDAV's quirks handled."""

from __future__ import annotations

from typing import Any

from escale_relay_fsspec.relay import FsspecRelay

from escale_core.address import RelayAddress


class WebdavRelay(FsspecRelay):
    """Objects under a WebDAV collection."""

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from webdav4.fsspec import WebdavFileSystem

        scheme = "https" if address.scheme == "webdavs" else "http"
        port = f":{address.port}" if address.port else ""
        user = options.pop("username", address.username)
        password = options.pop("password", address.password)
        auth = (user, password or "") if user else None
        fs = WebdavFileSystem(f"{scheme}://{address.host}{port}", auth=auth, **options)
        return fs, address.path or "/"
