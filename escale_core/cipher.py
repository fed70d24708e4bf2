"""The cipher interface that cipher plugins implement.

A cipher encrypts relay objects with a 32-byte key. AEAD ciphers authenticate ``aad`` (the
object's header) along with the content, so that a swapped or modified object is refused.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Cipher(ABC):
    """One encryption scheme, identified by ``name`` (a section's ``encryption`` key).

    :cvar name: the registered name.
    :cvar key_size: bytes of key material the cipher takes.
    :cvar authenticated: whether tampering is detected by the cipher itself.
    """

    name: str = ""
    key_size: int = 32
    authenticated: bool = True

    def __init__(self, key: bytes) -> None:
        if len(key) != self.key_size:
            raise ValueError(f"{self.name} takes a {self.key_size}-byte key, got {len(key)} bytes")
        self.key = key

    @abstractmethod
    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt ``plaintext``; the result carries what :meth:`decrypt` needs (nonce, tag)."""

    @abstractmethod
    def decrypt(self, ciphertext: bytes, aad: bytes = b"") -> bytes:
        """Decrypt and verify.

        :raises escale_core.errors.IntegrityError: the data or ``aad`` was modified.
        """
