"""Checksum ``blake3``, registered when the ``blake3`` package is installed (the fastest)."""

from __future__ import annotations

import importlib.util

from escale_core import hookimpl
from escale_core.hookspecs import RegisterChecksum


@hookimpl
def register_checksums(register: RegisterChecksum) -> None:
    """Register ``blake3`` if its package is importable."""
    if importlib.util.find_spec("blake3") is not None:
        register(
            "blake3",
            "blake3:blake3",
            requires=("blake3",),
            speed=100,
            description="BLAKE3 (fastest strong hash; pip install blake3)",
        )
