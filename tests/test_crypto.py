"""The KDF parameters of a repository header are checked before any work: a tampered header
with huge parameters is refused in one line instead of costing minutes or gigabytes."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from escale_core.crypto import derive_key, new_kdf
from escale_core.errors import IntegrityError, UnsupportedFormatError

SALT = base64.b64encode(b"s" * 16).decode()
ARGON2 = {"name": "argon2id", "memory_cost": 19456, "iterations": 2, "lanes": 1, "salt": SALT}
SCRYPT = {"name": "scrypt", "n": 2**14, "r": 8, "p": 1, "salt": SALT}


def test_the_parameters_of_new_repositories_are_accepted() -> None:
    assert len(derive_key(b"pass", new_kdf())) == 32
    assert len(derive_key(b"pass", SCRYPT)) == 32


@pytest.mark.parametrize(
    ("base", "change", "problem"),
    [
        (ARGON2, {"memory_cost": 1 << 40}, "memory_cost=1099511627776 is above the maximum"),
        (ARGON2, {"memory_cost": (1 << 20) + 1}, "is above the maximum 1048576"),
        (ARGON2, {"iterations": 10**9}, "iterations=1000000000 is above the maximum 16"),
        (ARGON2, {"lanes": 2**24}, "lanes=16777216 is above the maximum 16"),
        (ARGON2, {"memory_cost": 100}, "below the minimum"),
        (SCRYPT, {"n": 2**40}, "n=1099511627776 is above the maximum"),
        (SCRYPT, {"r": 1024}, "r=1024 is above the maximum 32"),
        (SCRYPT, {"p": 2**20}, "p=1048576 is above the maximum 16"),
        (SCRYPT, {"n": 2**20, "r": 32}, "need more than 1024 MiB"),
        (SCRYPT, {"n": 2**14 + 1}, "is not a power of 2"),
        (ARGON2, {"iterations": 2.0}, "iterations=2.0 is not an integer"),
        (ARGON2, {"lanes": True}, "lanes=True is not an integer"),
        (ARGON2, {"memory_cost": "19456"}, "memory_cost='19456' is not an integer"),
        (SCRYPT, {"n": None}, "n=None is not an integer"),
        (ARGON2, {"salt": base64.b64encode(b"s" * 10**6).decode()}, "not a short base64"),
        (ARGON2, {"salt": base64.b64encode(b"s").decode()}, "the salt has 1 bytes"),
        (ARGON2, {"salt": "not base64!"}, "the salt is not base64"),
        (ARGON2, {"salt": 7}, "the salt is not a short base64 string"),
    ],
)
def test_parameters_out_of_bounds_are_refused_before_deriving(
    base: dict[str, Any], change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(IntegrityError) as caught:
        derive_key(b"pass", {**base, **change})
    message = str(caught.value)
    assert problem in message
    assert "\n" not in message
    if "below the minimum" not in problem:
        assert "KDF parameters are out of bounds" in message
        assert "tampered header, or one made by an unknown escale" in message


@pytest.mark.parametrize("name", ["pbkdf2", None, 3])
def test_an_unknown_kdf_is_named(name: Any) -> None:
    with pytest.raises(UnsupportedFormatError, match="unknown KDF"):
        derive_key(b"pass", {**ARGON2, "name": name})
