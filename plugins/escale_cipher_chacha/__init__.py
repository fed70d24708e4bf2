"""Built-in cipher ``chacha20-poly1305``: fast without AES hardware."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from escale_core import hookimpl
from escale_core.aead import AeadCipher
from escale_core.hookspecs import RegisterCipher


class ChaCha20(AeadCipher):
    """ChaCha20-Poly1305 from ``cryptography``."""

    name = "chacha20-poly1305"
    aead_class = ChaCha20Poly1305


@hookimpl
def register_ciphers(register: RegisterCipher) -> None:
    """Register ``chacha20-poly1305``."""
    register(
        "chacha20-poly1305",
        ChaCha20,
        description="ChaCha20-Poly1305 authenticated encryption (CPUs without AES-NI)",
    )
