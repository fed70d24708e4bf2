"""A relay over any fsspec filesystem."""

from __future__ import annotations

import contextlib
import os
import posixpath
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import fsspec

from escale_core.address import RelayAddress
from escale_core.relay import Capabilities, Relay, mapped_errors

#: Schemes whose first URL component is a bucket (part of the path), not a host to connect to.
BUCKET_SCHEMES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "memory", "gdrive", "oss", "oci"}
LOCAL_SCHEMES = {"file", "local"}
TEMP_PREFIX = ".tmp-"
READ_BLOCK = 1 << 20
STALE = 3600.0  # seconds after which a temporary object is a crash leftover


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
        self.local = protocol == "file"
        self.capabilities = Capabilities(atomic_rename=self.local, exclusive_create=self.local)

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, name) if name else self.root

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self.list_sizes(prefix))

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        base = self._path(prefix)
        with mapped_errors(f"listing {base}"):
            if not self.fs.exists(base):
                return {}
            found = self.fs.find(base, detail=True)
        root = self.root.strip("/")
        out = {}
        for path, info in found.items():
            name = path.strip("/")[len(root) :].lstrip("/")
            if not posixpath.basename(name).startswith(TEMP_PREFIX):
                out[name] = int(info.get("size") or 0)
            elif self.local and time.time() - float(info.get("mtime") or time.time()) > STALE:
                self._discard(path)  # left by a writer that was killed long ago
        return out

    def read_bytes(self, name: str) -> bytes:
        with mapped_errors(f"reading {name}"):
            data: bytes = self.fs.cat_file(self._path(name))
            return data

    def read_stream(self, name: str) -> Iterator[bytes]:
        with mapped_errors(f"reading {name}"), self.fs.open(self._path(name), "rb") as source:
            while True:
                with mapped_errors(f"reading {name}"):
                    block = source.read(READ_BLOCK)
                if not block:
                    return
                yield block

    def write_bytes(self, name: str, data: bytes) -> None:
        self.write_stream(name, [data])

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        path = self._path(name)
        temp = self._temp(path)
        with mapped_errors(f"writing {name}"):
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            try:
                with self.fs.open(temp, "wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
                    if self.local:
                        out.flush()
                        os.fsync(out.fileno())
                self.fs.mv(temp, path)
            except BaseException:
                self._discard(temp)
                raise

    def create_exclusive(self, name: str, data: bytes) -> bool:
        if not self.local:
            return super().create_exclusive(name, data)
        path = self._path(name)
        temp = self._temp(path)
        with mapped_errors(f"creating {name}"):
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            self.fs.pipe_file(temp, data)
            try:
                os.link(temp, path)  # atomic: fails if the name exists
                return True
            except FileExistsError:
                return False
            finally:
                self._discard(temp)

    def delete(self, name: str) -> None:
        path = self._path(name)
        with mapped_errors(f"deleting {name}"), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def _temp(self, path: str) -> str:
        return f"{posixpath.dirname(path)}/{TEMP_PREFIX}{uuid.uuid4().hex}"

    def _discard(self, temp: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.fs.rm_file(temp)


def _connection_options(address: RelayAddress) -> dict[str, Any]:
    options: dict[str, Any] = {"host": address.host}
    if address.port:
        options["port"] = address.port
    if address.username:
        options["username"] = address.username
    if address.password:
        options["password"] = address.password
    return options
