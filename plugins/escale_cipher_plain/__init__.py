"""Built-in cipher ``plain``: no encryption, for relays that are trusted anyway.

Names and manifests are readable on the relay; contents are still checksummed.
"""

from __future__ import annotations

from escale_core import hookimpl
from escale_core.cipher import Cipher
from escale_core.hookspecs import RegisterCipher


class Plain(Cipher):
    """The identity cipher; it takes no key and detects nothing by itself."""

    name = "plain"
    key_size = 0
    authenticated = False

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        return plaintext

    def decrypt(self, ciphertext: bytes, aad: bytes = b"") -> bytes:
        return ciphertext


@hookimpl
def register_ciphers(register: RegisterCipher) -> None:
    """Register ``plain``."""
    register("plain", Plain, description="no encryption (the relay sees names and contents)")
