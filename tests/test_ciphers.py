"""The built-in ciphers: round trip, tamper detection, key checks."""

from __future__ import annotations

import os

import pytest

from escale_core.errors import IntegrityError
from escale_core.plugins import Plugins

AUTHENTICATED = ["aes-256-gcm", "chacha20-poly1305", "fernet"]


@pytest.mark.parametrize("name", [*AUTHENTICATED, "plain"])
def test_round_trip(plugins: Plugins, name: str) -> None:
    cls = plugins.ciphers.get(name).load()
    cipher = cls(os.urandom(cls.key_size))
    data = os.urandom(1000)
    sealed = cipher.encrypt(data, b"header")
    assert cipher.decrypt(sealed, b"header") == data
    if name != "plain":
        assert data not in sealed


@pytest.mark.parametrize("name", AUTHENTICATED)
def test_flipped_byte_wrong_header_and_wrong_key_are_refused(plugins: Plugins, name: str) -> None:
    cls = plugins.ciphers.get(name).load()
    key = os.urandom(32)
    sealed = bytearray(cls(key).encrypt(b"content" * 10, b"h1"))
    with pytest.raises(IntegrityError):
        cls(key).decrypt(bytes(sealed), b"h2")
    with pytest.raises(IntegrityError):
        cls(os.urandom(32)).decrypt(bytes(sealed), b"h1")
    sealed[len(sealed) // 2] ^= 1
    with pytest.raises(IntegrityError):
        cls(key).decrypt(bytes(sealed), b"h1")
    with pytest.raises(IntegrityError):
        cls(key).decrypt(bytes(sealed[:10]), b"h1")


def test_wrong_key_size_is_refused(plugins: Plugins) -> None:
    with pytest.raises(ValueError, match="32-byte key"):
        plugins.ciphers.get("aes-256-gcm").load()(b"short")
