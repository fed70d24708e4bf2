"""A relay over any fsspec filesystem, with hooks for backend plugins.

Backend plugins (WebDAV, SFTP, FTP, S3) subclass :class:`FsspecRelay` and override only what
their backend needs: :meth:`connect` (filesystem and root from the address), :meth:`publish`
(make a temporary object final), :meth:`create_exclusive`, :meth:`map_error` (backend
exceptions to relay errors) and :attr:`capabilities`.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import posixpath
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Callable, Optional, TypeVar

from escale_core.address import RelayAddress
from escale_core.errors import EscaleError, RelayError, RelayNotFoundError, RelayUnavailableError
from escale_core.relay import Capabilities, Relay, mapped_errors
from escale_core.writeback import WRITEBACK_EVERY, start_writeback, sync_filesystem

from .localfs import LocalFileSystem

#: Schemes whose first URL component is a bucket (part of the path), not a host to connect to.
BUCKET_SCHEMES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "memory", "gdrive", "oss", "oci"}
LOCAL_SCHEMES = {"file", "local"}
TEMP_PREFIX = ".tmp-"
READ_BLOCK = 1 << 20
STALE = 3600.0  # seconds after which a temporary object is a crash leftover
#: Pauses between attempts when the relay is unavailable (connection drop, timeout, 5xx).
RETRY_DELAYS = (0.5, 2.0, 5.0)

T = TypeVar("T")


class FsspecRelay(Relay):
    """Objects stored as files under a root folder of an fsspec filesystem."""

    def __init__(self, address: RelayAddress, **options: Any) -> None:
        super().__init__(address, **options)
        self.local = address.mount is not None or address.scheme in LOCAL_SCHEMES
        with self.errors(f"connecting to {address.display()}"):
            self.fs, root = self.connect(address, dict(options))
        self.root = root.rstrip("/") or "/"
        if self.local:
            self.capabilities = Capabilities(atomic_rename=True, exclusive_create=True)
            self.deferred_sync = True

    # -- hooks for backend plugins ---------------------------------------------------------

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        """The fsspec filesystem and the repository's root path on it."""
        if address.mount is not None:  # a locally mounted storage: a plain folder
            return LocalFileSystem(), posixpath.join(address.mount, address.path)
        if address.scheme in LOCAL_SCHEMES:
            return LocalFileSystem(), address.path
        import fsspec  # only here: local relays never pay for importing it

        if address.scheme in BUCKET_SCHEMES:
            return fsspec.filesystem(
                address.scheme, **options
            ), f"{address.host or ''}{address.path}"
        options = {**_connection_options(address), **options}
        return fsspec.filesystem(address.scheme, **options), address.path

    def publish(self, temp: str, final: str) -> None:
        """Make the complete temporary object ``temp`` visible as ``final`` (overwriting)."""
        self.fs.mv(temp, final)

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        """A backend exception as a relay error, or ``None`` to let :func:`mapped_errors`
        handle it (``OSError`` and its subclasses)."""
        return None

    # -- errors and retries ----------------------------------------------------------------

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Map exceptions raised inside the block to relay errors."""
        try:
            yield
        except EscaleError:  # already escale's word (a relay error, an abandoned round...)
            raise
        except Exception as exc:
            mapped = self.map_error(exc, what)  # the backend's own reading comes first
            if mapped is not None:
                raise mapped from exc
            with mapped_errors(what):
                raise

    def retry(self, what: str, operation: Callable[[], T]) -> T:
        """Run ``operation``, retrying with backoff while the relay is unavailable (or fails
        with one of the section's ``wait_on_error`` codes)."""
        for delay in (*RETRY_DELAYS, None):
            try:
                with self.errors(what):
                    return operation()
            except RelayError as exc:
                if delay is None or not (
                    isinstance(exc, RelayUnavailableError) or self._waits_on(exc)
                ):
                    raise
                time.sleep(delay)
                self.reconnect()
        raise AssertionError("unreachable")  # pragma: no cover

    def _waits_on(self, exc: RelayError) -> bool:
        """Whether the backend error behind ``exc`` has a code listed in ``wait_on_error``."""
        cause = exc.__cause__
        codes = {
            getattr(cause, "errno", None),
            getattr(cause, "status_code", None),
            getattr(getattr(cause, "response", None), "status_code", None),
        }
        text = str(cause)[:3]
        if text.isdigit():
            codes.add(int(text))  # ftplib errors start with the reply code
        return bool(self.wait_on_error & {c for c in codes if isinstance(c, int)})

    def reconnect(self) -> None:
        """Drop cached listings (and connections, where the backend keeps them)."""
        with contextlib.suppress(Exception):
            self.fs.invalidate_cache()

    # -- the relay contract ----------------------------------------------------------------

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, name) if name else self.root

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self.list_sizes(prefix))

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        base = self._path(prefix)

        def find() -> dict[str, Any]:
            self.fs.invalidate_cache()  # another client may have written meanwhile
            # not fs.exists(): it answers False on any error, and a failed listing must never
            # look like an empty repository
            found: dict[str, Any] = self.fs.find(base, detail=True)
            return found

        try:
            found = self.retry(f"listing {base}", find)
        except RelayNotFoundError:
            return {}
        root = self.root.strip("/")
        out = {}
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            name = path.strip("/")[len(root) :].lstrip("/")
            if not posixpath.basename(name).startswith(TEMP_PREFIX):
                out[name] = int(info.get("size") or 0)
            elif self.local and time.time() - float(info.get("mtime") or time.time()) > STALE:
                self._discard(path)  # left by a writer that was killed long ago
        return out

    def temp_objects(self, prefix: str = "") -> builtins.list[str]:
        base = self._path(prefix)

        def find() -> builtins.list[str]:
            self.fs.invalidate_cache()
            found: builtins.list[str] = self.fs.find(base)
            return found

        try:
            found = self.retry(f"listing {base}", find)
        except RelayNotFoundError:
            return []
        root = self.root.strip("/")
        names = (path.strip("/")[len(root) :].lstrip("/") for path in found)
        return sorted(n for n in names if posixpath.basename(n).startswith(TEMP_PREFIX))

    def read_bytes(self, name: str) -> bytes:
        data: bytes = self.retry(f"reading {name}", lambda: self.fs.cat_file(self._path(name)))
        return data

    def read_stream(self, name: str) -> Iterator[bytes]:
        source = self.retry(f"reading {name}", lambda: self.fs.open(self._path(name), "rb"))
        with source:
            while True:
                with self.errors(f"reading {name}"):
                    block = source.read(READ_BLOCK)
                if not block:
                    return
                yield block

    def write_bytes(self, name: str, data: bytes) -> None:
        self.write_stream(name, [data])

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        path = self._path(name)
        temp = self._temp(path)
        with self.errors(f"writing {name}"):
            self.makedirs(posixpath.dirname(path))
            try:
                with self.fs.open(temp, "wb") as out:
                    if self.local:
                        _write_local(out, chunks)
                    else:
                        for chunk in chunks:
                            out.write(chunk)
                self.publish(temp, path)
            except BaseException:
                self._discard(temp)
                raise

    def sync(self) -> None:
        if self.local:
            with self.errors(f"syncing {self.root}"):
                sync_filesystem(self.root)

    def modified(self, name: str) -> Optional[float]:
        with self.errors(f"reading the time of {name}"):
            info = self.fs.info(self._path(name))
        for key in ("mtime", "modified", "LastModified", "created"):
            value = info.get(key)
            if isinstance(value, (int, float)):
                return float(value)
            if hasattr(value, "timestamp"):
                return float(value.timestamp())
        return None

    def makedirs(self, folder: str) -> None:
        """Create ``folder`` and its parents if the backend has folders."""
        self.fs.makedirs(folder, exist_ok=True)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        if not self.local:
            return super().create_exclusive(name, data)
        path = self._path(name)
        temp = self._temp(path)
        with self.errors(f"creating {name}"):
            self.makedirs(posixpath.dirname(path))
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

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

        with contextlib.suppress(RelayNotFoundError):
            self.retry(f"deleting {name}", remove)
        if self.local:  # folders emptied by collection would pile up and slow listings
            folder = posixpath.dirname(path)
            while len(folder) > len(self.root):
                try:
                    os.rmdir(folder)
                except OSError:
                    break
                folder = posixpath.dirname(folder)

    def _temp(self, path: str) -> str:
        return f"{posixpath.dirname(path)}/{TEMP_PREFIX}{uuid.uuid4().hex}"

    def _discard(self, temp: str) -> None:
        with contextlib.suppress(Exception):
            self.fs.rm_file(temp)


def _write_local(out: Any, chunks: Iterable[bytes]) -> None:
    """Write to a local file, starting the disk writes every few MiB (see
    :func:`escale_core.writeback.start_writeback`) so that :meth:`FsspecRelay.sync` finds little
    left to do."""
    unflushed = 0
    for chunk in chunks:
        out.write(chunk)
        unflushed += len(chunk)
        if unflushed >= WRITEBACK_EVERY:
            out.flush()
            start_writeback(out.fileno())
            unflushed = 0
    out.flush()
    start_writeback(out.fileno())


def _connection_options(address: RelayAddress) -> dict[str, Any]:
    options: dict[str, Any] = {"host": address.host}
    if address.port:
        options["port"] = address.port
    if address.username:
        options["username"] = address.username
    if address.password:
        options["password"] = address.password
    return options
