"""A relay object is read no further than escale's bound for its kind: a header, a sealed
manifest or a sealed client state made huge by a hostile relay or client is refused in one
line without being read whole."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import zstandard

from escale_core import repository as module
from escale_core.address import parse_relay_url
from escale_core.crypto import KIND_CLIENT, KIND_MANIFEST
from escale_core.errors import IntegrityError
from escale_core.manifest import Manifest
from escale_core.plugins import get_plugins
from escale_core.relay import Relay, open_relay
from escale_core.repository import Repository, client_name, open_repository, update_name


def open_at(folder: Path) -> tuple[Relay, Repository]:
    plugins = get_plugins()
    relay = open_relay(parse_relay_url(f"file://{folder}"), plugins.relays)
    repo = open_repository(
        relay, plugins.ciphers, b"pass", create_cipher="aes-256-gcm", create_checksum="sha256"
    )
    return relay, repo


def test_a_huge_header_is_refused(tmp_path: Path) -> None:
    open_at(tmp_path)
    header = tmp_path / "escale.json"
    header.write_bytes(header.read_bytes() + b" " * (64 << 10))  # still valid JSON
    with pytest.raises(IntegrityError) as caught:
        open_at(tmp_path)
    assert str(caught.value).startswith("relay object escale.json: header larger than 64 KiB")


def test_a_sealed_manifest_beyond_the_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, repo = open_at(tmp_path)
    cid = repo.client_id("mallory")
    manifest = Manifest(repo.id, cid, 1, "sha256", 1, 1.0)
    data = json.loads(zstandard.ZstdDecompressor().stream_reader(manifest.encode()).read())
    data["padding"] = os.urandom(1 << 20).hex()  # authentic, valid, and 1 MiB compressed
    blob = zstandard.ZstdCompressor().compress(json.dumps(data).encode())
    ctx = repo.context("manifest", cid, 1)
    relay.write_stream(update_name(cid, 1), repo.sealer.seal(KIND_MANIFEST, ctx, [blob]))
    assert repo.read_manifest(cid, 1).seq == 1  # within the real bound
    monkeypatch.setattr(module, "MAX_SEALED_MANIFEST", 512 << 10)
    with pytest.raises(IntegrityError, match="manifest larger than 512 KiB"):
        repo.read_manifest(cid, 1)


def test_a_huge_client_state_is_refused(tmp_path: Path) -> None:
    relay, repo = open_at(tmp_path)
    cid = repo.client_id("mallory")
    state = {"format": "escale-client", "version": 2, "name": "mallory", "last_seq": 0}
    state.update(acks={}, want_full={}, time=1.0, pushes=True, padding="p" * (18 << 20))
    ctx = repo.context("client", cid)
    body = json.dumps(state).encode()
    relay.write_stream(client_name(cid), repo.sealer.seal(KIND_CLIENT, ctx, [body]))
    with pytest.raises(IntegrityError, match="client state larger than 17 MiB"):
        repo.read_client(cid)
