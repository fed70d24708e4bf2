"""FTP relay: fsspec's FTP filesystem with FTP's quirks handled."""

from __future__ import annotations

from typing import Any

from escale_relay_fsspec.relay import FsspecRelay

from escale_core.address import RelayAddress


class FtpRelay(FsspecRelay):
    """Objects under a folder of an FTP server."""

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from fsspec.implementations.ftp import FTPFileSystem

        options.setdefault("username", address.username or "anonymous")
        if address.password and "password" not in options:
            options["password"] = address.password
        fs = FTPFileSystem(
            address.host, port=address.port or 21, tls=address.scheme == "ftps", **options
        )
        return fs, address.path or "/"
