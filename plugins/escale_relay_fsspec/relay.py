"""A relay over any fsspec filesystem."""

from __future__ import annotations

import posixpath
import uuid
from typing import Any

import fsspec

from escale_core.address import RelayAddress
from escale_core.relay import Capabilities, Relay, mapped_errors

#: Schemes whose first URL component is a bucket (part of the path), not a host to connect to.
BUCKET_SCHEMES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "memory", "gdrive", "oss", "oci"}
LOCAL_SCHEMES = {"file", "local"}


class FsspecRelay(Relay):
    """Objects stored as files under a root folder of an fsspec filesystem."""

    def __init__(self, address: RelayAddress, **options: Any) -> None:
        super().__init__(address, **options)
        if address.mount is not None:  # a locally mounted storage: a plain folder
            protocol, root = "file", posixpath.join(address.mount, address.path)
        elif address.scheme in LOCAL_SCHEMES:
            protocol, root = "file", address.path
        elif address.scheme in BUCKET_SCHEMES:
            protocol, root = address.scheme, f"{address.host or ''}{address.path}"
        else:
            protocol, root = address.scheme, address.path
            options = {**_connection_options(address), **options}
        with mapped_errors(f"relay {address.display()}"):
            self.fs = fsspec.filesystem(protocol, **options)
        self.root = root.rstrip("/") or "/"
        local = protocol == "file"
        self.capabilities = Capabilities(atomic_rename=local, exclusive_create=local)

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, name) if name else self.root

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix)
        with mapped_errors(f"listing {base}"):
            if not self.fs.exists(base):
                return []
            found = self.fs.find(base)
        root = self.root.strip("/")
        return sorted(p.strip("/")[len(root) :].lstrip("/") for p in found)

    def read_bytes(self, name: str) -> bytes:
        with mapped_errors(f"reading {name}"):
            data: bytes = self.fs.cat_file(self._path(name))
            return data

    def write_bytes(self, name: str, data: bytes) -> None:
        path = self._path(name)
        temp = f"{posixpath.dirname(path)}/.tmp-{uuid.uuid4().hex}"
        with mapped_errors(f"writing {name}"):
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            self.fs.pipe_file(temp, data)
            self.fs.mv(temp, path)

    def delete(self, name: str) -> None:
        path = self._path(name)
        with mapped_errors(f"deleting {name}"):
            if self.fs.exists(path):
                self.fs.rm_file(path)


def _connection_options(address: RelayAddress) -> dict[str, Any]:
    options: dict[str, Any] = {"host": address.host}
    if address.port:
        options["port"] = address.port
    if address.username:
        options["username"] = address.username
    if address.password:
        options["password"] = address.password
    return options
