"""Keys and object envelopes.

* The repository's random 32-byte **master key** is wrapped (AES-256-GCM) by a key derived from
  the passphrase with Argon2id (scrypt where ``cryptography`` lacks Argon2id); the KDF name,
  parameters and salt are stored in the repository header, and minimums are enforced on read.
* Every object is sealed in an **envelope**: ``magic | kind | salt`` then the body. The object
  key is HKDF-SHA256(master key, salt). Streaming ciphers (AES-256-GCM, ChaCha20-Poly1305) seal
  the body in 64 KiB segments; segment ``i`` uses nonce ``i`` (11 bytes) ``|| last-flag`` and
  authenticates ``header || context``, where the caller's context names the object (repository,
  client, sequence, index), so truncated, reordered, swapped or replayed objects are refused.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .aead import AeadCipher
from .cipher import Cipher
from .errors import IntegrityError, UnsupportedFormatError

MAGIC = b"ESC\x01"  # the last byte is the envelope format version
SALT_SIZE = 16
HEADER_SIZE = len(MAGIC) + 1 + SALT_SIZE
SEGMENT = 64 * 1024
TAG_SIZE = 16

#: Object kinds, bound into every envelope.
KIND_MANIFEST, KIND_PACK, KIND_CHUNK, KIND_CLIENT = 1, 2, 3, 4

#: KDF minimums enforced when reading a header (a weakened header is refused).
ARGON2_MIN = {"memory_cost": 19456, "iterations": 2, "lanes": 1}
SCRYPT_MIN = {"n": 2**14, "r": 8, "p": 1}
#: KDF maximums enforced when reading a header, before deriving: a tampered header must not
#: make a client spend minutes or gigabytes (memory_cost is in KiB: 1 GiB).
ARGON2_MAX = {"memory_cost": 1 << 20, "iterations": 16, "lanes": 16}
SCRYPT_MAX = {"n": 2**20, "r": 32, "p": 16}
#: The most memory a header's KDF may ask for (scrypt uses 128 * n * r bytes).
KDF_MAX_MEMORY = 1 << 30
#: Accepted salt lengths, in bytes (new headers use 16).
SALT_MIN, SALT_MAX = 8, 64


def new_kdf() -> dict[str, Any]:
    """Parameters for a new repository: Argon2id 19 MiB, t=2, p=1 (scrypt 2^15 as fallback)."""
    salt = base64.b64encode(os.urandom(16)).decode()
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id  # noqa: F401
    except ImportError:  # pragma: no cover - cryptography < 44
        return {"name": "scrypt", "n": 2**15, "r": 8, "p": 1, "salt": salt}
    # OWASP's Argon2id setting m=19 MiB, t=2, p=1: peak memory stays small for syncs
    return {"name": "argon2id", "memory_cost": 19456, "iterations": 2, "lanes": 1, "salt": salt}


def renewed_kdf(current: Any) -> dict[str, Any]:
    """KDF parameters with a fresh salt for re-wrapping the key of a repository whose header
    has ``current``: the same algorithm (the other clients refuse a change of family), each
    cost the larger of the current one and :func:`new_kdf`'s."""
    fresh = new_kdf()
    if not isinstance(current, dict) or current.get("name") != fresh["name"]:
        if isinstance(current, dict) and current.get("name") in ("argon2id", "scrypt"):
            fresh = {**current, "salt": fresh["salt"]}
        return fresh
    for key in ARGON2_MIN if fresh["name"] == "argon2id" else SCRYPT_MIN:
        if type(current.get(key)) is int:
            fresh[key] = max(fresh[key], current[key])
    return fresh


def kdf_not_weaker(new: Any, old: Any) -> bool:
    """Whether KDF parameters ``new`` cost at least what ``old`` do: the same algorithm, and
    every cost parameter (Argon2id memory, iterations, lanes; scrypt n, r, p) ``>=``."""
    if not isinstance(new, dict) or not isinstance(old, dict):
        return False
    name = old.get("name")
    if name not in ("argon2id", "scrypt") or new.get("name") != name:
        return False
    costs = ARGON2_MIN if name == "argon2id" else SCRYPT_MIN
    return all(
        type(new.get(key)) is int and type(old.get(key)) is int and new[key] >= old[key]
        for key in costs
    )


def derive_key(passphrase: bytes, kdf: dict[str, Any]) -> bytes:
    """Derive the key-encryption key from the passphrase.

    The parameters are checked against :data:`ARGON2_MIN`/:data:`ARGON2_MAX` (or the scrypt
    ones) before any work, so a tampered header costs neither time nor memory.

    :raises IntegrityError: parameters that are not integers, out of bounds, or a bad salt.
    :raises UnsupportedFormatError: an unknown KDF.
    """
    name = kdf.get("name")
    if name not in ("argon2id", "scrypt"):
        raise UnsupportedFormatError(f"repository header: unknown KDF {name!r}")
    salt = _salt(kdf.get("salt"))
    if name == "argon2id":
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        p = _check_bounds(kdf, ARGON2_MIN, ARGON2_MAX)
        return Argon2id(
            salt=salt,
            length=32,
            iterations=p["iterations"],
            lanes=p["lanes"],
            memory_cost=p["memory_cost"],
        ).derive(passphrase)
    p = _check_bounds(kdf, SCRYPT_MIN, SCRYPT_MAX)
    if p["n"] & (p["n"] - 1):
        _out_of_bounds(f"n={p['n']} is not a power of 2")
    if 128 * p["n"] * p["r"] > KDF_MAX_MEMORY:
        _out_of_bounds(f"n={p['n']}, r={p['r']} need more than {KDF_MAX_MEMORY >> 20} MiB")
    return Scrypt(salt=salt, length=32, n=p["n"], r=p["r"], p=p["p"]).derive(passphrase)


def _salt(value: Any) -> bytes:
    """The header's salt: base64 of :data:`SALT_MIN` to :data:`SALT_MAX` bytes."""
    # checked on the text first: a huge string must not be decoded
    if not isinstance(value, str) or len(value) > 4 * SALT_MAX:
        _out_of_bounds("the salt is not a short base64 string")
    try:
        salt = base64.b64decode(value, validate=True)
    except ValueError:
        _out_of_bounds("the salt is not base64")
    if not SALT_MIN <= len(salt) <= SALT_MAX:
        _out_of_bounds(f"the salt has {len(salt)} bytes (allowed {SALT_MIN} to {SALT_MAX})")
    return salt


def _check_bounds(
    kdf: dict[str, Any], minimum: dict[str, int], maximum: dict[str, int]
) -> dict[str, int]:
    """The KDF's integer parameters, each checked against its bounds."""
    checked = {}
    for key, low in minimum.items():
        value = kdf.get(key)
        if type(value) is not int:  # not a bool, float or string either
            _out_of_bounds(f"{key}={value!r} is not an integer")
        if value < low:
            raise IntegrityError(
                f"repository header: KDF {key}={value} is below the minimum {low} "
                "(weakened or tampered header)"
            )
        if value > maximum[key]:
            _out_of_bounds(f"{key}={value} is above the maximum {maximum[key]}")
        checked[key] = value
    return checked


def _out_of_bounds(problem: str) -> NoReturn:
    raise IntegrityError(
        f"repository header: the KDF parameters are out of bounds ({problem}): a tampered "
        "header, or one made by an unknown escale; nothing was derived or written: put back "
        "the repository's escale.json (any client's copy of the relay folder has it)"
    )


def wrap_key(kek: bytes, master: bytes, aad: bytes) -> str:
    """Encrypt the master key with the key-encryption key."""
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(kek).encrypt(nonce, master, aad)).decode()


def unwrap_key(kek: bytes, wrapped: str, aad: bytes) -> bytes:
    """Decrypt the master key.

    :raises IntegrityError: wrong passphrase, or a modified header.
    """
    blob = base64.b64decode(wrapped)
    try:
        return AESGCM(kek).decrypt(blob[:12], blob[12:], aad)
    except InvalidTag:
        raise IntegrityError("wrong passphrase (or the repository header was modified)") from None


def object_key(master: bytes, salt: bytes) -> bytes:
    """The key of one object."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"escale object v1").derive(
        master
    )


@dataclass
class Sealer:
    """Seals and opens object envelopes for one repository.

    :param cipher_class: the repository's cipher (a :class:`Cipher` subclass).
    :param master: the master key (empty for ``plain``).
    """

    cipher_class: type[Cipher]
    master: bytes

    def _cipher(self, salt: bytes) -> Cipher:
        if self.cipher_class.key_size == 0:
            return self.cipher_class(b"")
        return self.cipher_class(object_key(self.master, salt)[: self.cipher_class.key_size])

    def seal(self, kind: int, context: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield the envelope of the plaintext ``chunks``."""
        salt = os.urandom(SALT_SIZE)
        header = MAGIC + bytes([kind]) + salt
        yield header
        cipher = self._cipher(salt)
        aad = header + context
        if not isinstance(cipher, AeadCipher):
            yield cipher.encrypt(b"".join(chunks), aad)  # whole object (fernet, plain)
            return
        counter = 0
        pending = b""
        for segment in _segments(chunks):
            if counter or pending:
                yield cipher.seal(_nonce(counter, last=False), pending, aad)
                counter += 1
            pending = segment
        yield cipher.seal(_nonce(counter, last=True), pending, aad)

    def open(self, kind: int, context: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield the verified plaintext of an envelope.

        :raises IntegrityError: wrong kind, truncated, reordered or modified content.
        """
        stream = _Reader(chunks)
        header = stream.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE or header[:3] != MAGIC[:3]:
            raise IntegrityError("not an escale object (bad header)")
        if header[3] != MAGIC[3]:
            raise UnsupportedFormatError(f"object envelope version {header[3]} is not supported")
        if header[4] != kind:
            raise IntegrityError(f"object kind {header[4]} where {kind} was expected (swapped)")
        cipher = self._cipher(header[5:])
        aad = header + context
        if not isinstance(cipher, AeadCipher):
            yield cipher.decrypt(stream.read(-1), aad)
            return
        counter = 0
        segment = stream.read(SEGMENT + TAG_SIZE)
        while True:
            following = stream.read(SEGMENT + TAG_SIZE)
            last = not following
            yield cipher.open(_nonce(counter, last=last), segment, aad)
            if last:
                return
            segment, counter = following, counter + 1


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _segments(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Re-cut ``chunks`` into SEGMENT-sized pieces (the last may be shorter)."""
    reader = _Reader(chunks)
    while True:
        segment = reader.read(SEGMENT)
        if not segment:
            return
        yield segment


class _Reader:
    """Read exact sizes from an iterable of byte chunks, without quadratic copying."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._current = memoryview(b"")

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (all that is left when ``size`` < 0); short only at the end."""
        parts: list[bytes] = []
        wanted = size
        while wanted != 0:
            if not self._current:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._current = memoryview(chunk)
                continue
            take = len(self._current) if wanted < 0 else min(wanted, len(self._current))
            parts.append(bytes(self._current[:take]))
            self._current = self._current[take:]
            if wanted > 0:
                wanted -= take
        return b"".join(parts)
