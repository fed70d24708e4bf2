"""Checksums: choosing the algorithm a section uses.

A checksum plugin registers a factory returning a hashlib-like object (``update``,
``digest``, ``hexdigest``). ``auto`` picks the registered algorithm with the highest ``speed``
rank among the strong ones (BLAKE3 when installed, else blake2b).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Union

from .errors import ConfigError
from .registry import Registry


class Hasher(Protocol):
    """What a checksum factory returns."""

    def update(self, data: Union[bytes, memoryview], /) -> Any:
        """Feed bytes."""

    def digest(self) -> bytes:
        """The digest so far."""

    def hexdigest(self) -> str:
        """The digest so far, in hexadecimal."""


def resolve_checksum(name: str, registry: Registry) -> str:
    """Turn ``auto`` into the fastest strong algorithm; check that ``name`` exists.

    :raises ConfigError: no such checksum, or none is available for ``auto``.
    """
    if name != "auto":
        if name not in registry:
            raise ConfigError(
                f"unknown checksum '{name}'",
                key="checksum",
                hint=f"use auto or one of {', '.join(registry.names())}",
            )
        return name
    ranked = [e for e in registry if e.options.get("speed", 0) > 0 and e.available]
    if not ranked:
        raise ConfigError("no strong checksum is available for 'auto'", key="checksum")
    return max(ranked, key=lambda e: (e.options["speed"], e.name)).name


def checksum_factory(name: str, registry: Registry) -> Callable[[], Hasher]:
    """The factory of checksum ``name`` (``auto`` resolved)."""
    factory: Callable[[], Hasher] = registry.get(resolve_checksum(name, registry)).load()
    return factory
