"""SFTP relay: sshfs (asyncssh), with SFTP's quirks handled.

* Publish is ``posix-rename@openssh.com`` from a temporary name (atomic, overwrites). A server
  without that extension gets remove-then-rename: never a partial object, but a short gap.
* Create-if-absent writes a temporary object, then renames it with plain SFTP ``rename``,
  which refuses to overwrite (OpenSSH: ``link()`` then ``unlink()``): atomic, and the object
  is complete when it appears.
* Listings are one concurrent ``readdir`` walk, never a cache. Temporary objects left by a
  killed writer are removed after a day (the server's clock may be off).
* sshfs's ``rmdir`` does nothing: folders emptied by a deletion are removed here, so that
  listings do not slow down with the history; a write into a folder another client just
  removed recreates it.
* Host keys are checked against ``~/.ssh/known_hosts`` as ``ssh`` does; relay option
  ``known_hosts`` names another file, or ``"none"`` to accept any host key.
* Keys: relay option ``client_keys = ["~/.ssh/id_ed25519"]`` (``key_filename`` is an alias);
  otherwise asyncssh tries ``~/.ssh/id_*``, the SSH agent and ``~/.ssh/config``.
* A lost connection, a refused connection or a timeout are retried on a new connection, and
  the operation after a lost connection starts on a new one.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import logging
import os
import posixpath
import socket
import stat
import time
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, Callable, Optional, TypeVar

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

T = TypeVar("T")
#: Age (by the server's clock) after which a temporary object is a crash leftover.
STALE = 86400.0
#: Folders read at the same time during a listing.
PARALLEL_READDIR = 16
_NO_CHECK = (None, False, "", "none", "None")


class SftpRelay(FsspecRelay):
    """Objects under a folder of an SFTP server."""

    capabilities = Capabilities(atomic_rename=True, exclusive_create=True)

    # -- connection --------------------------------------------------------------------

    def connect(self, address: RelayAddress, options: dict[str, Any]) -> tuple[Any, str]:
        import asyncssh
        from sshfs import SSHFileSystem

        self._folders: set[str] = set()
        kwargs = ssh_options(address, options)
        try:
            fs = SSHFileSystem(address.host, skip_instance_cache=True, **kwargs)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            bcrypt = "bcrypt" in str(exc)  # OpenSSH's encrypted keys need the bcrypt package
            raise ConfigError(
                f"cannot load the client key for {address.display()}: {exc}",
                key="relay_options.client_keys",
                hint="pip install bcrypt, or use ssh-agent"
                if bcrypt
                else "give relay_options.passphrase for an encrypted key, or use ssh-agent",
            ) from None
        except TypeError as exc:  # an option asyncssh does not know
            raise ConfigError(
                f"an option is not an SSH connection option ({exc})",
                key="relay_options",
                hint="see asyncssh's SSHClientConnectionOptions for the valid ones",
            ) from None
        _quiet_lost_transfers(fs.loop)
        root = address.path or "/"
        if root == "/~" or root.startswith("/~/"):  # relative to the login folder
            home = _run(fs, lambda sftp: sftp.realpath("."))
            root = posixpath.join(home, root[3:])
        return fs, root

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        fs = getattr(self, "fs", None)
        if fs is not None and fs.client.is_closed():
            self.reconnect()  # dropped during an earlier operation
        with super().errors(what):
            yield

    def reconnect(self) -> None:
        """A new connection: after a drop, the old one never comes back."""
        old = self.fs
        try:
            self.fs, _ = self.connect(self.address, dict(self.options))
        except Exception:  # still unreachable: the next attempt reports it
            return
        _shutdown(old)

    def close(self) -> None:
        _shutdown(self.fs)

    # -- writing -----------------------------------------------------------------------

    def makedirs(self, folder: str) -> None:
        if folder not in self._folders:
            self.fs.makedirs(folder, exist_ok=True)
            self._folders.add(folder)

    def publish(self, temp: str, final: str) -> None:
        import asyncssh

        async def rename(sftp: Any) -> None:
            try:
                await sftp.posix_rename(temp, final)
            except asyncssh.SFTPOpUnsupported:
                with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                    await sftp.remove(final)
                await sftp.rename(temp, final)

        _run(self.fs, rename)

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        pending = iter(chunks)
        started = False

        def tracked() -> Iterator[bytes]:
            nonlocal started
            for chunk in pending:
                started = True
                yield chunk

        try:
            super().write_stream(name, tracked())
        except RelayNotFoundError:
            if started:
                raise
            self._folders.clear()  # another client removed the folder: create it again
            super().write_stream(name, pending)

    def read_stream(self, name: str) -> Iterator[bytes]:
        with self.errors(f"reading {name}"):  # closing the file may fail on a lost connection
            yield from super().read_stream(name)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        import asyncssh

        path = self._path(name)
        temp = self._temp(path)
        with self.errors(f"creating {name}"):
            self.makedirs(posixpath.dirname(path))
            try:
                with self.fs.open(temp, "wb") as out:
                    out.write(data)
                try:
                    _run(self.fs, lambda sftp: sftp.rename(temp, path))  # never overwrites
                    return True
                except asyncssh.SFTPFailure:
                    if self.fs.exists(path):
                        return False
                    raise
            finally:
                self._discard(temp)

    # -- listing and deleting ----------------------------------------------------------

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        base = self._path(prefix)
        what = f"listing {prefix or 'the repository'}"
        found = self.retry(what, lambda: _run(self.fs, lambda sftp: _walk(sftp, base)))
        out, now = {}, time.time()
        for path, attrs in found:
            if posixpath.basename(path).startswith(TEMP_PREFIX):
                if now - (attrs.mtime or now) > STALE:
                    self._discard(path)
                continue
            out[path[len(self.root) :].lstrip("/")] = int(attrs.size or 0)
        return out

    def temp_objects(self, prefix: str = "") -> builtins.list[str]:
        base = self._path(prefix)
        found = self.retry(
            f"listing {prefix or 'the repository'}",
            lambda: _run(self.fs, lambda sftp: _walk(sftp, base)),
        )
        return sorted(
            path[len(self.root) :].lstrip("/")
            for path, _ in found
            if posixpath.basename(path).startswith(TEMP_PREFIX)
        )

    def delete(self, name: str) -> None:
        super().delete(name)
        self._prune(posixpath.dirname(self._path(name)))

    def _prune(self, folder: str) -> None:
        """Remove ``folder`` and its parents inside the root while they are empty."""
        inside = self.root.rstrip("/") + "/"

        async def prune(sftp: Any) -> None:
            current = folder
            while current.startswith(inside) and len(current) > len(inside):
                await sftp.rmdir(current)  # fails on a folder that is not empty
                self._folders.discard(current)
                current = posixpath.dirname(current)

        with contextlib.suppress(Exception):
            _run(self.fs, prune)

    # -- errors ------------------------------------------------------------------------

    def map_error(self, exc: BaseException, what: str) -> Optional[RelayError]:
        import asyncssh

        display = self.address.display()
        where = what if display in what else f"{what} on {display}"
        server = f"{self.address.host}:{self.address.port or 22}"
        cause = exc.__cause__
        if isinstance(exc, asyncssh.PermissionDenied) or isinstance(
            cause, asyncssh.PermissionDenied
        ):
            return RelayAuthError(
                f"{where}: login refused for user {self._user()}; check the user name, "
                "password or relay_options.client_keys"
            )
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            return RelayAuthError(
                f"{where}: the host key of {server} is not trusted ({exc.reason}); add it to "
                "~/.ssh/known_hosts (connect once with ssh), or name a file in "
                "relay_options.known_hosts"
            )
        if isinstance(exc, socket.gaierror):
            if exc.errno == socket.EAI_AGAIN:
                return RelayUnavailableError(f"{where}: cannot resolve {self.address.host} now")
            return RelayError(f"{where}: unknown host {self.address.host}; check the host name")
        if isinstance(exc, ConnectionRefusedError):
            return RelayUnavailableError(
                f"{where}: connection refused by {server}; is the SSH server running, "
                "and is the port right?"
            )
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return RelayUnavailableError(f"{where}: {server} did not answer in time")
        if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return RelayUnavailableError(f"{where}: {server} is unreachable ({exc.strerror})")
        if isinstance(
            exc,
            (
                asyncssh.ConnectionLost,
                asyncssh.DisconnectError,
                asyncssh.SFTPNoConnection,
                asyncssh.SFTPConnectionLost,
                ConnectionError,
            ),
        ) or (isinstance(exc, ValueError) and "SFTP connections" in str(exc)):
            return RelayUnavailableError(f"{where}: connection to {server} lost ({exc})")
        if isinstance(exc, (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, FileNotFoundError)):
            return RelayNotFoundError(f"{where}: not found")
        if isinstance(exc, asyncssh.SFTPPermissionDenied):
            return RelayAuthError(
                f"{where}: permission denied by the server; check that user "
                f"{self._user()} may write in {self.root}"
            )
        if isinstance(exc, asyncssh.ChannelOpenError):
            return RelayError(f"{where}: the server opened no SFTP session ({exc.reason})")
        if isinstance(exc, asyncssh.SFTPError):
            return RelayError(f"{where}: the server refused it ({exc.reason or exc.code})")
        if isinstance(exc, asyncssh.Error):
            return RelayError(f"{where}: {exc.reason}")
        return None

    def _user(self) -> str:
        user = self.options.get("username") or self.address.username
        return str(user) if user else "(the local user name)"


def ssh_options(address: RelayAddress, options: dict[str, Any]) -> dict[str, Any]:
    """asyncssh connection options from the address and the section's relay options."""
    kwargs = dict(options)
    if address.port:
        kwargs["port"] = address.port
    if address.username and "username" not in kwargs:
        kwargs["username"] = address.username
    if address.password and "password" not in kwargs:
        kwargs["password"] = address.password
    keys = kwargs.pop("key_filename", None) or kwargs.get("client_keys")
    if keys is not None:
        keys = [keys] if isinstance(keys, str) else list(keys)
        kwargs["client_keys"] = [os.path.expanduser(str(k)) for k in keys]
        for key in kwargs["client_keys"]:
            if not os.path.isfile(key):
                raise ConfigError(
                    f"client key {key} does not exist",
                    key="relay_options.client_keys",
                    hint="name a private key file such as ~/.ssh/id_ed25519",
                )
    known = kwargs.pop("known_hosts", ())
    if known in _NO_CHECK:
        kwargs["known_hosts"] = None  # accept any host key
    elif isinstance(known, str):
        kwargs["known_hosts"] = os.path.expanduser(known)
        if not os.path.isfile(kwargs["known_hosts"]):
            raise ConfigError(
                f"known_hosts file {known} does not exist",
                key="relay_options.known_hosts",
                hint='name a file of host keys, or "none" to accept any host key',
            )
    else:
        kwargs["known_hosts"] = known  # () is asyncssh's default: ~/.ssh/known_hosts
    kwargs.setdefault("connect_timeout", 30)
    kwargs.setdefault("keepalive_interval", 15)  # a dead server is noticed within a minute
    kwargs.setdefault("keepalive_count_max", 4)
    return kwargs


def _run(fs: Any, operation: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``operation(sftp_client)`` on one of the filesystem's SFTP channels."""
    from fsspec.asyn import sync

    async def run() -> T:
        async with fs._pool.get() as sftp:
            return await operation(sftp)

    result: T = sync(fs.loop, run)
    return result


async def _walk(sftp: Any, top: str) -> list[tuple[str, Any]]:
    """``(path, attributes)`` of every file under ``top``; a missing folder is empty."""
    import asyncssh

    gate = asyncio.Semaphore(PARALLEL_READDIR)

    async def walk(folder: str) -> list[tuple[str, Any]]:
        try:
            async with gate:
                entries = await sftp.readdir(folder)
        except asyncssh.SFTPNoSuchFile:  # absent, or removed meanwhile by a deletion
            return []
        files, folders = [], []
        for entry in entries:
            if entry.filename in (".", ".."):
                continue
            path = posixpath.join(folder, entry.filename)
            mode = entry.attrs.permissions or 0
            if stat.S_ISDIR(mode):
                folders.append(walk(path))
            elif stat.S_ISREG(mode):
                files.append((path, entry.attrs))
        for found in await asyncio.gather(*folders):
            files.extend(found)
        return files

    return await walk(top)


def _quiet_lost_transfers(loop: Any) -> None:
    """Print nothing more than the one error when a connection drops mid-transfer.

    asyncssh reads and writes a file in parallel tasks: the first failure is raised (and
    reported), the rest would end as "Task exception was never retrieved" tracebacks, and
    asyncio warns "socket.send() raised exception." for every write after the loss.
    """
    import asyncssh

    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _LostSocketWrites) for f in asyncio_log.filters):
        asyncio_log.addFilter(_LostSocketWrites())
    previous = loop.get_exception_handler()
    if getattr(previous, "escale_sftp", False):
        return

    def handler(loop: Any, context: dict[str, Any]) -> None:
        lost = isinstance(context.get("exception"), asyncssh.Error)
        if lost and "never retrieved" in str(context.get("message")):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.escale_sftp = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


class _LostSocketWrites(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "socket.send() raised exception."


def _shutdown(fs: Any) -> None:
    """Close the SSH connection (sshd ends its per-connection process)."""
    from fsspec.asyn import sync

    async def close() -> None:
        fs.client.close()
        await fs.client.wait_closed()

    with contextlib.suppress(Exception):
        sync(fs.loop, close, timeout=5)
