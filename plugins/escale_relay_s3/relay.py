"""S3 relay: s3fs, with object-store semantics.

* There is no rename: objects are written under their final name, and an S3 object only appears
  when its upload completes; a failed upload is discarded, never completed. escale publishes a
  manifest after its data, so a puller never sees half an update.
* Create-if-absent is real: ``If-None-Match: *`` (``pipe_file(mode="create")``).
* Memory: 8 MiB blocks and one part at a time (s3fs defaults buffer 50 MiB per file and several
  parts in parallel).
* A missing bucket is reported by name at connection.
"""

from __future__ import annotations

import contextlib
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
from escale_core.relay import Capabilities

BLOCK_SIZE = 8 << 20
_AUTH = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AllAccessDisabled",
}
_BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


class S3Relay(FsspecRelay):
    """Objects under ``bucket/prefix``."""

    capabilities = Capabilities(atomic_rename=False, exclusive_create=True)

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from s3fs import S3FileSystem

        options.pop("username", None)
        options.pop("password", None)
        options.setdefault("default_block_size", BLOCK_SIZE)
        options.setdefault("max_concurrency", 1)
        fs = S3FileSystem(skip_instance_cache=True, **options)
        bucket = address.host or ""
        if not fs.exists(bucket):
            raise RelayNotFoundError(
                f"bucket '{bucket}' does not exist at "
                f"{options.get('endpoint_url', 'S3')}: create it first"
            )
        return fs, f"{bucket}{address.path}"

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        where = f"{what} on {self.address.display()}"
        code = ""
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
        name = type(exc).__name__
        if code in _AUTH:
            return RelayAuthError(f"{where}: access refused ({code}); check key and secret")
        if code in ("NoSuchBucket", "NoSuchKey", "404"):
            return RelayNotFoundError(f"{where}: not found ({code})")
        if code in _BUSY or name in (
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ClientConnectorError",
            "ServerDisconnectedError",
        ):
            return RelayUnavailableError(f"{where}: {name} {code}".rstrip())
        if code:
            return RelayError(f"{where}: {code}: {exc}")
        return None

    def makedirs(self, folder: str) -> None:
        """S3 has no folders."""

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        path = self._path(name)
        with self.errors(f"writing {name}"):
            out = self.fs.open(path, "wb", block_size=BLOCK_SIZE)
            try:
                for chunk in chunks:
                    out.write(chunk)
            except BaseException:
                with contextlib.suppress(Exception):
                    out.discard()  # abort the upload: nothing appears under the name
                out.closed = True  # a discarded file must not be flushed when collected
                raise
            out.close()

    def create_exclusive(self, name: str, data: bytes) -> bool:
        with self.errors(f"creating {name}"):
            try:
                self.fs.pipe_file(self._path(name), data, mode="create")
                return True
            except FileExistsError:
                return False
