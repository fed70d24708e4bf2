"""Built-in checksums from :mod:`hashlib` (sha256, blake2b, sha512, sha3-256, ...)."""

from __future__ import annotations

import functools
import hashlib

from escale_core import hookimpl
from escale_core.hookspecs import RegisterChecksum

#: Speed ranks for ``checksum = "auto"``; 0 = never chosen by default (weak or slow).
SPEED = {"blake2b": 50, "sha256": 45, "sha512": 40, "blake2s": 35, "sha3_256": 20}
WEAK = {"md5", "sha1"}


@hookimpl
def register_checksums(register: RegisterChecksum) -> None:
    """Register every fixed-length algorithm hashlib guarantees (shake_* have no fixed length)."""
    for algorithm in sorted(hashlib.algorithms_guaranteed):
        if algorithm.startswith("shake"):
            continue
        name = algorithm.replace("_", "-")
        note = " (weak: detects changes, not tampering)" if algorithm in WEAK else ""
        register(
            name,
            functools.partial(hashlib.new, algorithm),
            description=f"hashlib {algorithm}{note}",
            speed=SPEED.get(algorithm, 0),
        )
