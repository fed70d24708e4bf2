"""The checksum plugins and the choice of ``auto``."""

from __future__ import annotations

import hashlib
import importlib.util

import pytest

from escale_core.checksum import checksum_factory, resolve_checksum
from escale_core.errors import ConfigError
from escale_core.plugins import Plugins
from escale_core.registry import Registry


@pytest.mark.parametrize("name", ["sha256", "blake2b", "sha512", "sha3-256", "md5"])
def test_hashlib_checksums_match_hashlib(plugins: Plugins, name: str) -> None:
    hasher = checksum_factory(name, plugins.checksums)()
    hasher.update(b"abc")
    assert hasher.hexdigest() == hashlib.new(name.replace("-", "_"), b"abc").hexdigest()


def test_auto_is_blake3_when_installed_else_blake2b(plugins: Plugins) -> None:
    expected = "blake3" if importlib.util.find_spec("blake3") else "blake2b"
    assert resolve_checksum("auto", plugins.checksums) == expected


def test_auto_never_picks_a_weak_or_non_cryptographic_hash() -> None:
    registry = Registry("checksum")
    registry.add("p", "md5", object(), speed=0)
    registry.add("p", "xxh3-128", object())
    with pytest.raises(ConfigError, match="no strong checksum"):
        resolve_checksum("auto", registry)


def test_blake3_and_xxh3_compute_their_digests(plugins: Plugins) -> None:
    blake3 = pytest.importorskip("blake3")
    xxhash = pytest.importorskip("xxhash")
    h = checksum_factory("blake3", plugins.checksums)()
    h.update(b"abc")
    assert h.hexdigest() == blake3.blake3(b"abc").hexdigest()
    x = checksum_factory("xxh3-128", plugins.checksums)()
    x.update(b"abc")
    assert x.hexdigest() == xxhash.xxh3_128(b"abc").hexdigest()
