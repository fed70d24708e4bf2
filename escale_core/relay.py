"""The relay interface: a dumb object store that the sync engine coordinates through.

Object names are ``/``-separated paths relative to the repository folder on the relay. A relay
never interprets them; escale's engine decides what they mean. Backend errors are mapped to
:class:`~escale_core.errors.RelayError` subclasses here, at the edge.
"""

from __future__ import annotations

import builtins
import errno
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .address import RelayAddress
from .errors import (
    EscaleError,
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayUnavailableError,
)

if TYPE_CHECKING:
    from .registry import Registry


@dataclass(frozen=True)
class Capabilities:
    """What a relay backend really guarantees (probed or declared).

    :param atomic_rename: a rename replaces the target atomically (write-then-publish).
    :param exclusive_create: create-if-absent is atomic (locks without races).
    """

    atomic_rename: bool = False
    exclusive_create: bool = False


class Relay(ABC):
    """One repository folder on a relay storage."""

    capabilities = Capabilities()
    #: extra error codes (errno, HTTP status, FTP reply) meaning "wait and retry"
    wait_on_error: frozenset[int] = frozenset()
    #: whether a written object may not be durable until :meth:`sync` (local folders: one
    #: filesystem sync per update instead of one per object)
    deferred_sync = False

    def __init__(self, address: RelayAddress, **options: Any) -> None:
        self.address = address
        self.options = options

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Names of the objects under ``prefix`` (recursively), sorted."""

    @abstractmethod
    def read_bytes(self, name: str) -> bytes:
        """The content of object ``name``."""

    @abstractmethod
    def write_bytes(self, name: str, data: bytes) -> None:
        """Publish object ``name``: readers see all of ``data`` or nothing."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete object ``name``; a missing object is not an error."""

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """Names and sizes of the objects under ``prefix``; backends override it with one
        listing request (this fallback counts each object's bytes as streamed, never holding
        one whole)."""
        return {name: sum(map(len, self.read_stream(name))) for name in self.list(prefix)}

    def read_stream(self, name: str) -> Iterator[bytes]:
        """The content of object ``name`` in pieces (backends stream it)."""
        yield self.read_bytes(name)

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        """Publish object ``name`` from pieces (backends stream it with bounded memory)."""
        self.write_bytes(name, b"".join(chunks))

    def create_exclusive(self, name: str, data: bytes) -> bool:
        """Create object ``name`` unless it exists; return whether this call created it.

        Atomic where :attr:`capabilities` says ``exclusive_create``; elsewhere best effort.
        """
        if self.exists(name):
            return False
        self.write_bytes(name, data)
        return True

    def sync(self) -> None:  # noqa: B027 - a no-op where every write is durable
        """Make every object written so far durable (where :attr:`deferred_sync`)."""

    def modified(self, name: str) -> Optional[float]:
        """The relay's modification time of ``name`` (POSIX seconds), if the backend says."""
        return None

    def exists(self, name: str) -> bool:
        """Whether object ``name`` exists."""
        parent, _, _ = name.rpartition("/")
        return name in self.list(parent)

    def temp_objects(self, prefix: str = "") -> builtins.list[str]:
        """Names of the temporary objects of writes under ``prefix`` (``.tmp-*``, left by
        writers that were killed or are writing now), which :meth:`list` leaves out; sorted.
        Backends that write temporary objects override it (``escale check``, ``escale fix``)."""
        return []

    def server_report(self) -> builtins.list[tuple[str, Optional[bool], str]]:
        """What ``escale relay check`` shows of the server, after its probes ran: ``(name,
        ok, detail)`` lines, ``ok`` ``None`` for information (the server's name, how it lists,
        whether a rename replaces). Backends that learn something of their server override it.
        """
        return []

    def close(self) -> None:  # noqa: B027 - optional for relays without connections
        """Release connections."""


@contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """Map backend exceptions raised inside the block to :class:`RelayError` subclasses."""
    try:
        yield
    except EscaleError:  # already escale's word (a relay error, an abandoned round...)
        raise
    except FileNotFoundError as exc:
        raise RelayNotFoundError(f"{what}: not found ({exc})") from exc
    except PermissionError as exc:
        raise RelayAuthError(f"{what}: permission denied ({exc})") from exc
    except (ConnectionError, TimeoutError) as exc:
        raise RelayUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        hint = _RELAY_OS_HINTS.get(exc.errno or 0)
        raise RelayError(f"{what}: {exc}{'; ' + hint if hint else ''}") from exc


#: what to do about a storage error of the relay, by errno
_RELAY_OS_HINTS = {
    errno.ENOSPC: "the relay storage is full: free space there (or lower 'quota')",
    errno.EDQUOT: "the relay storage's quota is full: free space there (or lower 'quota')",
    errno.EROFS: "the relay storage is read-only: remount it read-write",
}


def open_relay(address: RelayAddress, relays: Registry, **options: Any) -> Relay:
    """Instantiate the relay serving ``address``.

    A multi-path address (``scheme:///mount//folder``) names storage mounted locally, so it
    is served by the ``file`` relay and needs no backend package.

    :raises escale_core.errors.MissingDependencyError: the backend is not installed.
    :raises escale_core.errors.RelayError: the relay cannot be opened.
    """
    scheme = "file" if address.mount is not None else address.scheme
    factory = relays.get(scheme).load()
    relay: Relay = factory(address, **options)
    return relay


class ReadOnlyRelay(Relay):
    """A relay seen without writing to it (``escale sync --dry-run``, ``escale check``): reads
    go to ``inner``; a write or a deletion is refused, so a dry run can never change the
    relay."""

    def __init__(self, inner: Relay) -> None:
        super().__init__(inner.address, **inner.options)
        self.inner = inner
        self.capabilities = inner.capabilities

    def _refuse(self, name: str) -> RelayError:
        return RelayError(f"dry run: nothing is written to the relay (not even {name})")

    def list(self, prefix: str = "") -> list[str]:
        """The inner relay's listing."""
        return self.inner.list(prefix)

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """The inner relay's listing with sizes."""
        return self.inner.list_sizes(prefix)

    def read_bytes(self, name: str) -> bytes:
        """Read from the inner relay."""
        return self.inner.read_bytes(name)

    def read_stream(self, name: str) -> Iterator[bytes]:
        """Read from the inner relay, streaming."""
        return self.inner.read_stream(name)

    def exists(self, name: str) -> bool:
        """Whether the inner relay has ``name``."""
        return self.inner.exists(name)

    def modified(self, name: str) -> Optional[float]:
        """The inner relay's modification time of ``name``."""
        return self.inner.modified(name)

    def temp_objects(self, prefix: str = "") -> builtins.list[str]:
        """The inner relay's temporary objects."""
        return self.inner.temp_objects(prefix)

    def server_report(self) -> builtins.list[tuple[str, Optional[bool], str]]:
        """The inner relay's report of its server."""
        return self.inner.server_report()

    def write_bytes(self, name: str, data: bytes) -> None:
        """Refused."""
        raise self._refuse(name)

    def write_stream(self, name: str, chunks: Iterable[bytes]) -> None:
        """Refused."""
        raise self._refuse(name)

    def delete(self, name: str) -> None:
        """Refused."""
        raise self._refuse(name)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        """Refused."""
        raise self._refuse(name)

    def close(self) -> None:
        """Close the inner relay."""
        self.inner.close()
