"""The cached master key: used only for the same header and passphrase, only where the
passphrase file is private, and never in place of a check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from escale_core import repository
from escale_core.keycache import KeyCache, header_digest

from .clients import Cluster

HEADER = {"format": "escale-repository", "id": "r1", "kdf": {"salt": "AA=="}, "key": "wrapped"}
MASTER = b"k" * 32


@pytest.fixture
def cache(tmp_path: Path) -> KeyCache:
    return KeyCache(tmp_path / "section.key")


def test_a_kept_key_comes_back_for_the_same_header_and_passphrase(cache: KeyCache) -> None:
    cache.put(HEADER, b"secret", MASTER)
    assert cache.get(dict(HEADER), b"secret") == MASTER
    assert os.stat(cache.path).st_mode & 0o777 == 0o600


def test_another_passphrase_gets_nothing(cache: KeyCache) -> None:
    cache.put(HEADER, b"secret", MASTER)
    assert cache.get(HEADER, b"secret2") is None


@pytest.mark.parametrize("field", ["id", "kdf", "key"])
def test_another_header_gets_nothing(cache: KeyCache, field: str) -> None:
    cache.put(HEADER, b"secret", MASTER)
    assert cache.get({**HEADER, field: "other"}, b"secret") is None


def test_a_cache_file_others_may_read_is_ignored(cache: KeyCache) -> None:
    cache.put(HEADER, b"secret", MASTER)
    cache.path.chmod(0o644)
    assert cache.get(HEADER, b"secret") is None


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"key": "!!", "header": 1}'])
def test_a_corrupt_cache_file_is_ignored(cache: KeyCache, content: bytes) -> None:
    cache.path.write_bytes(content)
    cache.path.chmod(0o600)
    assert cache.get(HEADER, b"secret") is None


def test_the_cache_file_holds_no_passphrase(cache: KeyCache) -> None:
    cache.put(HEADER, b"a very secret passphrase", MASTER)
    entry = json.loads(cache.path.read_text())
    assert "secret" not in cache.path.read_text()
    assert entry["header"] == header_digest(HEADER)


def test_no_cache_unless_the_passphrase_file_is_private(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("secret\n")
    database = tmp_path / "section.sqlite"
    key.chmod(0o600)
    cache = KeyCache.beside(database, key)
    assert cache is not None
    cache.put(HEADER, b"secret", MASTER)
    key.chmod(0o640)
    assert KeyCache.beside(database, key) is None
    assert not cache.path.exists()  # the key kept while the file was private is removed
    assert KeyCache.beside(database, None) is None


def test_argon2_runs_once_for_rounds_with_a_private_passphrase_file(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from escale_core.config import load_config
    from escale_core.plugins import get_plugins
    from escale_core.session import sync_section

    alice = cluster.add("alice")
    alice.write("a.txt", "hello")
    monkeypatch.setenv("HOME", cluster.env["HOME"])
    derivations = []
    real = repository.derive_key

    def counting(passphrase: bytes, kdf: dict) -> bytes:
        derivations.append(kdf)
        return real(passphrase, kdf)

    monkeypatch.setattr(repository, "derive_key", counting)
    config = load_config(alice.config)
    for _ in range(3):
        sync_section(config, config.section("shared"), get_plugins())
    assert len(derivations) == 1  # the repository's creation; the next rounds read the cache
    (kept,) = (alice.root.parent / "state").glob("*.key")
    assert os.stat(kept).st_mode & 0o777 == 0o600


def test_a_changed_passphrase_file_is_checked_again_not_served_from_the_cache(
    cluster: Cluster,
) -> None:
    alice = cluster.add("alice")
    alice.write("a.txt", "hello")
    alice.sync()
    key = alice.root.parent / "key"
    key.write_text("not the passphrase\n")
    run = alice.sync(check=False)
    assert run.returncode != 0
    assert "passphrase" in run.stderr.lower()
