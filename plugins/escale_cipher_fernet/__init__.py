"""Built-in cipher ``fernet``, kept for compatibility with the original Escale.

Fernet (AES-128-CBC + HMAC-SHA256) cannot stream: it holds a whole object, several times over,
in memory. Prefer ``aes-256-gcm``.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken

from escale_core import hookimpl
from escale_core.cipher import Cipher
from escale_core.errors import IntegrityError
from escale_core.hookspecs import RegisterCipher


class FernetCipher(Cipher):
    """Fernet tokens; ``aad`` is bound by prefixing it to the authenticated message."""

    name = "fernet"

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        return self._fernet.encrypt(len(aad).to_bytes(4, "big") + aad + plaintext)

    def decrypt(self, ciphertext: bytes, aad: bytes = b"") -> bytes:
        try:
            message = self._fernet.decrypt(ciphertext)
        except InvalidToken:
            raise IntegrityError("fernet: authentication failed (tampered or wrong key)") from None
        size = int.from_bytes(message[:4], "big")
        if message[4 : 4 + size] != aad:
            raise IntegrityError("fernet: object header does not match (swapped object)")
        return message[4 + size :]


@hookimpl
def register_ciphers(register: RegisterCipher) -> None:
    """Register ``fernet``."""
    register(
        "fernet",
        FernetCipher,
        description="Fernet, for compatibility (whole objects in memory; prefer aes-256-gcm)",
    )
