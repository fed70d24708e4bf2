"""Built-in cipher ``aes-256-gcm``: AES in Galois/Counter mode, 256-bit key (the default)."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from escale_core import hookimpl
from escale_core.aead import AeadCipher
from escale_core.hookspecs import RegisterCipher


class Aes256Gcm(AeadCipher):
    """AES-256-GCM from ``cryptography`` (hardware AES where the CPU has it)."""

    name = "aes-256-gcm"
    aead_class = AESGCM


@hookimpl
def register_ciphers(register: RegisterCipher) -> None:
    """Register ``aes-256-gcm``."""
    register("aes-256-gcm", Aes256Gcm, description="AES-256-GCM authenticated encryption (default)")
