"""Checksum ``xxh3-128``, registered when the ``xxhash`` package is installed.

Very fast but not cryptographic: it detects changes and corruption, never chosen by ``auto``.
"""

from __future__ import annotations

import importlib.util

from escale_core import hookimpl
from escale_core.hookspecs import RegisterChecksum


@hookimpl
def register_checksums(register: RegisterChecksum) -> None:
    """Register ``xxh3-128`` if its package is importable."""
    if importlib.util.find_spec("xxhash") is not None:
        register(
            "xxh3-128",
            "xxhash:xxh3_128",
            requires=("xxhash",),
            description="xxHash XXH3 128-bit (not cryptographic: change detection only)",
        )
