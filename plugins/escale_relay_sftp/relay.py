"""SFTP relay: sshfs (asyncssh) with SFTP's quirks handled."""

from __future__ import annotations

from typing import Any

from escale_relay_fsspec.relay import FsspecRelay

from escale_core.address import RelayAddress
from escale_core.relay import Capabilities


class SftpRelay(FsspecRelay):
    """Objects under a folder of an SFTP server."""

    capabilities = Capabilities(atomic_rename=True, exclusive_create=True)

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from sshfs import SSHFileSystem

        options.setdefault("username", address.username)
        if address.password and "password" not in options:
            options["password"] = address.password
        fs = SSHFileSystem(address.host, port=address.port or 22, **options)
        return fs, address.path or "/"
