"""S3 relay: s3fs, with object-store semantics.

* There is no rename on S3 (``mv`` is copy + delete). Objects are written under their final
  name: an S3 object appears whole when its upload completes, and an upload that fails is
  discarded (``S3File.discard()`` aborts the multipart upload), never completed. escale
  publishes the manifest after its data, so a puller never sees half an update.
* Create-if-absent is real: ``If-None-Match: *`` (``pipe_file(mode="create")``). For a
  compatible store that ignores it, relay option ``conditional_writes = false`` declares
  create-if-absent best effort, so escale's locks fall back to write, wait, re-list.
* Memory: 9 MiB blocks, one part at a time (s3fs's defaults buffer 50 MiB per file and send
  several parts in parallel). 9 MiB is just above escale's default ``max_page_size``, so a
  data object is one ``PUT``.
* Listings are never stale (the dircache is dropped before each one; see FsspecRelay).
* Credentials: ``username``/``password`` (or ``password_file`` ``key:secret``) are the access
  key and the secret; relay options ``key``/``secret``/``token``, or boto's usual sources.
* The bucket is checked at connection: a missing bucket, refused credentials, an unknown host
  and a refused connection are each one message naming what to fix.
"""

from __future__ import annotations

import contextlib
import posixpath
import socket
from collections.abc import Iterable, Iterator
from typing import Any, Optional
from urllib.parse import urlsplit

from escale_relay_fsspec.relay import TEMP_PREFIX, FsspecRelay

from escale_core.address import RelayAddress
from escale_core.errors import (
    ConfigError,
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayUnavailableError,
)
from escale_core.relay import Capabilities

BLOCK_SIZE = 9 << 20
#: botocore tries twice; escale's own retries (0.5, 2, 5 s, with a fresh listing) follow.
BOTO_CONFIG = {"retries": {"mode": "standard", "max_attempts": 2}, "connect_timeout": 30}
_AUTH = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
    "AccountProblem",
    "403",
}
_BUSY = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "ConditionalRequestConflict",  # a concurrent conditional write: try again
    "OperationAborted",
    "500",
    "502",
    "503",
    "504",
}
_DROPPED = {  # exception class names of lost connections and timeouts (botocore, aiohttp)
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ServerDisconnectedError",
    "ClientPayloadError",
    "ClientOSError",
    "ClientConnectionResetError",
    "IncompleteRead",
    "ResponseStreamingError",
}


class S3Relay(FsspecRelay):
    """Objects under ``bucket/prefix``."""

    capabilities = Capabilities(atomic_rename=False, exclusive_create=True)
    bucket, endpoint, server = "", "", "AWS S3"

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        from s3fs import S3FileSystem

        if address.port:
            raise ConfigError(
                f"'{address.display()}' has a port: an S3 address is s3://bucket/prefix",
                key="relay",
                hint='give the server as relay_options endpoint_url = "http://host:port"',
            )
        key = options.pop("username", None) or address.username
        secret = options.pop("password", None) or address.password
        if key:
            options.setdefault("key", key)
        if secret:
            options.setdefault("secret", secret)
        if not options.pop("conditional_writes", True):  # a store that ignores If-None-Match
            self.capabilities = Capabilities(atomic_rename=False, exclusive_create=False)
        options.setdefault("default_block_size", BLOCK_SIZE)
        options.setdefault("max_concurrency", 1)
        options["config_kwargs"] = {**BOTO_CONFIG, **(options.get("config_kwargs") or {})}
        client = options.get("client_kwargs") or {}
        endpoint = options.get("endpoint_url") or client.get("endpoint_url")
        self.endpoint = str(endpoint or "")
        self.server = f"the S3 server {endpoint}" if endpoint else "AWS S3"
        self.bucket = address.host or ""
        self.fs = fs = S3FileSystem(skip_instance_cache=True, **options)
        try:
            self.retry(
                f"opening bucket '{self.bucket}'",
                lambda: fs.call_s3("head_bucket", Bucket=self.bucket),
            )
        except RelayNotFoundError:  # HEAD answers a bare 404
            raise self._no_bucket() from None
        prefix = "/".join(part for part in address.path.split("/") if part)
        return fs, f"{self.bucket}/{prefix}" if prefix else self.bucket

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        where = what if self.address.display() in what else f"{what} on {self.address.display()}"
        server = self.server
        for err in _causes(exc):
            code, name = _code(err), type(err).__name__
            if code == "NoSuchBucket":
                return self._no_bucket()
            if code in _AUTH:
                return RelayAuthError(
                    f"{where}: access refused by {server} ({code}): check the access key "
                    "and secret (username and password, or relay_options key and secret) "
                    "and the bucket's permissions"
                )
            if name in ("NoCredentialsError", "PartialCredentialsError"):
                return RelayAuthError(
                    f"{where}: {server} needs both an access key and its secret ({err}): give "
                    "username and password (or password_file holding key:secret, or "
                    "relay_options key and secret), or neither to use the AWS environment"
                )
            if code in ("NoSuchKey", "404"):
                return RelayNotFoundError(f"{where}: not found")
            if name == "EndpointConnectionError":
                cause = getattr(err, "kwargs", {}).get("error")
                if isinstance(getattr(cause, "os_error", cause), socket.gaierror):
                    return RelayError(
                        f"{where}: cannot resolve host '{urlsplit(self.endpoint).hostname}': "
                        "check relay_options endpoint_url"
                    )
                return RelayUnavailableError(
                    f"{where}: cannot connect to {server} (connection refused or "
                    "unreachable): is it running, and is endpoint_url right?"
                )
            if code in _BUSY or name in _DROPPED:
                return RelayUnavailableError(f"{where}: {server} failed: {code or name}")
            if code:
                message = str(getattr(err, "response", {}).get("Error", {}).get("Message", ""))
                return RelayError(f"{where}: {server} answered {code}: {message}".rstrip(": "))
        return None

    def _no_bucket(self) -> RelayNotFoundError:
        return RelayNotFoundError(
            f"bucket '{self.bucket}' does not exist on {self.server}: create it, "
            "or correct the bucket in the relay address"
        )

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """One recursive listing. A missing prefix lists nothing; no ``exists()`` first: s3fs's
        ``exists(bucket)`` answers False when the server cannot be reached."""
        base = self._path(prefix)

        def find() -> dict[str, Any]:
            self.fs.invalidate_cache()  # another client may have written meanwhile
            found: dict[str, Any] = self.fs.find(base, detail=True)
            return found

        root = self.root + "/"
        return {
            path[len(root) :]: int(info.get("size") or 0)
            for path, info in self.retry(f"listing {prefix or 'the repository'}", find).items()
            if info.get("type") != "directory"
            and path.startswith(root)
            and not posixpath.basename(path).startswith(TEMP_PREFIX)
        }

    def makedirs(self, folder: str) -> None:
        """S3 has no folders."""

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        path = self._path(name)
        with self.errors(f"writing {name}"):
            out = self.fs.open(path, "wb")  # parts of default_block_size
            try:
                for chunk in chunks:
                    out.write(chunk)
                out.close()  # the object appears now, whole
            except BaseException:
                with contextlib.suppress(Exception):
                    out.discard()  # abort the upload: nothing appears under the name
                out.closed = True  # a discarded file must not be completed when collected
                raise

    def create_exclusive(self, name: str, data: bytes) -> bool:
        if not self.capabilities.exclusive_create:
            return super().create_exclusive(name, data)  # check, then write
        path, attempts = self._path(name), []

        def create() -> bool:
            attempts.append(path)
            try:
                self.fs.pipe_file(path, data, mode="create")
                return True
            except FileExistsError:  # ours, if an earlier attempt's answer was lost
                return len(attempts) > 1 and bool(self.fs.cat_file(path) == data)

        return self.retry(f"creating {name}", create)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from (s3fs wraps botocore's errors)."""
    seen: set[int] = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _code(err: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` ("" for other exceptions)."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
