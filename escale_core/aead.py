"""Shared code of the AEAD cipher plugins (AES-256-GCM, ChaCha20-Poly1305)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag

from .cipher import Cipher
from .errors import IntegrityError

NONCE_SIZE = 12


class AeadCipher(Cipher):
    """A cipher over one of ``cryptography``'s AEAD classes, with a random 96-bit nonce."""

    aead_class: ClassVar[Any]

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self._aead = self.aead_class(key)

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt one segment with an explicit, never reused, nonce."""
        return bytes(self._aead.encrypt(nonce, plaintext, aad))

    def open(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Decrypt one segment.

        :raises IntegrityError: modified, truncated, reordered or swapped data.
        """
        try:
            return bytes(self._aead.decrypt(nonce, ciphertext, aad))
        except InvalidTag:
            raise IntegrityError(
                f"{self.name}: authentication failed (tampered, truncated or swapped object)"
            ) from None

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + bytes(self._aead.encrypt(nonce, plaintext, aad))

    def decrypt(self, ciphertext: bytes, aad: bytes = b"") -> bytes:
        if len(ciphertext) < NONCE_SIZE + 16:
            raise IntegrityError(f"{self.name}: ciphertext too short ({len(ciphertext)} bytes)")
        try:
            return bytes(self._aead.decrypt(ciphertext[:NONCE_SIZE], ciphertext[NONCE_SIZE:], aad))
        except InvalidTag:
            raise IntegrityError(
                f"{self.name}: authentication failed (tampered or wrong key)"
            ) from None
