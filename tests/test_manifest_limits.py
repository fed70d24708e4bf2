"""Bounds on what a manifest or client state may hold (``docs/protocol.md``, Limits): beyond
them the object is refused with one line, before it costs memory."""

from __future__ import annotations

import json
from typing import Any

import pytest
import zstandard

from escale_core import manifest as module
from escale_core.errors import IntegrityError
from escale_core.manifest import ClientState, Deletion, FileEntry, Manifest, ObjectRef, safe_path

REPO, CID, SEQ = "r" * 32, "a" * 32, 1


def valid() -> dict[str, Any]:
    """The JSON of a valid manifest: one file in one pack."""
    manifest = Manifest(REPO, CID, SEQ, "sha256", 1, 1.0)
    manifest.names[CID] = "alice"
    manifest.objects.append(ObjectRef("pack", 5, False))
    manifest.files.append(
        FileEntry("a.txt", 5, 10**18, "ab" * 32, {CID: SEQ}, CID, SEQ, 1, [(0, 0, 5)])
    )
    reader = zstandard.ZstdDecompressor().stream_reader(manifest.encode())  # size undeclared
    data: dict[str, Any] = json.loads(reader.read())
    return data


def decode(data: dict[str, Any]) -> Manifest:
    return Manifest.decode(
        zstandard.ZstdCompressor().compress(json.dumps(data).encode()), REPO, CID, SEQ
    )


def refused(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        decode(data)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


def bomb(padding: int, declare: bool) -> bytes:
    """A valid manifest followed by ``padding`` spaces, compressed (a few KiB), with or
    without its size declared in the frame."""
    text = json.dumps(valid()).encode()
    compressor = zstandard.ZstdCompressor()
    size = len(text) + padding
    chunker = compressor.chunker(size=size if declare else -1, chunk_size=1 << 20)
    out = list(chunker.compress(text))
    block = b" " * (1 << 20)
    for _ in range(padding >> 20):
        out += chunker.compress(block)
    out += chunker.finish()
    return b"".join(out)


def test_a_valid_manifest_is_read() -> None:
    assert decode(valid()).files[0].path == "a.txt"


def test_a_manifest_of_many_batches_reads_back_equal() -> None:
    """Rows are encoded a batch at a time: more than one batch of files and of deletions, with
    several authors, read back entry for entry."""
    others = ["b" * 32, "c" * 32]
    manifest = Manifest(REPO, CID, SEQ, "sha256", 1, 1.0)
    manifest.names.update({CID: "alice", others[0]: "bob", others[1]: "carol"})
    manifest.objects.append(ObjectRef("pack", 2500, False))
    for i in range(2500):
        author = [CID, *others][i % 3]
        version = {CID: SEQ, author: 7 + i}
        manifest.files.append(
            FileEntry(f"d/{i}", 1, 10**18 + i, "ab" * 32, version, author, 7 + i, 2, [(0, i, 1)])
        )
    for i in range(1200):
        manifest.deletions.append(Deletion(f"gone/{i}", {others[1]: i + 1}, others[1], i + 1, 3, i))
    back = Manifest.decode(manifest.encode(), REPO, CID, SEQ)
    assert back.files == manifest.files
    assert back.deletions == manifest.deletions
    assert back.names == manifest.names


@pytest.mark.parametrize("declare", [True, False], ids=["size declared", "size unknown"])
def test_a_decompression_bomb_is_refused(declare: bool) -> None:
    blob = bomb(300 << 20, declare)
    assert len(blob) < 100_000
    with pytest.raises(IntegrityError, match="decompresses to more than 256 MiB"):
        Manifest.decode(blob, REPO, CID, SEQ)


def test_too_many_entries_are_refused() -> None:
    data = valid()
    data["deletions"] = [0] * module.MAX_ENTRIES  # plus the one file
    refused(data, "more than the 10000000 escale reads")


def test_too_many_clients_are_refused() -> None:
    data = valid()
    extra = [f"{i:032x}" for i in range(1, module.MAX_CLIENTS + 1)]
    data["ids"] += extra
    data["names"] += [""] * len(extra)
    refused(data, "client ids: 65537 of them, more than the 65536 escale reads")


@pytest.mark.parametrize("what", ["objects", "pieces"])
def test_too_many_objects_or_pieces_are_refused(monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    monkeypatch.setattr(module, "MAX_OBJECTS", 3)
    data = valid()
    if what == "objects":
        data["objects"] += [["pack", 1, False]] * 3
        refused(data, "data objects: 4 of them, more than the 3 escale reads")
    else:
        data["files"][0][1] = 4
        data["files"][0][8] = [[0, 0, 1], [0, 1, 1], [0, 2, 1], [0, 3, 1]]
        data["objects"][0][1] = 4
        refused(data, "pieces of 'a.txt': 4 of them")


@pytest.mark.parametrize(
    "path",
    ["a" * 256, "é" * 128, "x/" + "b" * 256, "/".join(["c" * 100] * 41)],
    ids=["component", "component in bytes", "deep component", "whole path"],
)
def test_too_long_paths_are_unsafe(path: str) -> None:
    with pytest.raises(IntegrityError, match="is too long"):
        safe_path(path)
    data = valid()
    data["files"][0][0] = path
    refused(data, "is too long")


def test_the_longest_paths_are_accepted() -> None:
    longest = "/".join(["d" * 255] * 16)[:4096]
    assert safe_path("é" * 127) and safe_path(longest) == longest


def test_a_too_long_client_name_is_refused() -> None:
    data = valid()
    data["names"] = ["n" * 256]
    refused(data, "is not a client name of at most 255 bytes")
    data["names"] = ["é" * 128]
    refused(data, "is not a client name of at most 255 bytes")


def state(**changes: Any) -> bytes:
    data = json.loads(ClientState("alice").encode())
    return json.dumps({**data, **changes}).encode()


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"name": "n" * 256}, "at most 255 bytes"),
        ({"acks": {f"{i:032x}": 1 for i in range(65537)}}, "acknowledged clients: 65537"),
        ({"want_full": {f"{i:032x}": 1 for i in range(65537)}}, "full update requests: 65537"),
        ({"pad": "p" * (16 << 20)}, "client state larger than 16 MiB"),
    ],
)
def test_client_states_are_bounded(changes: dict[str, Any], problem: str) -> None:
    assert ClientState.decode(state()).name == "alice"
    with pytest.raises(IntegrityError, match=problem):
        ClientState.decode(state(**changes))


@pytest.mark.parametrize("when", [float("inf"), float("nan"), 1e300, -1.0, "12", True, None])
def test_a_time_no_date_can_be_made_of_is_refused(when: Any) -> None:
    """A client state or a manifest whose time is Infinity, NaN, huge, negative or not a
    number is malformed: shown by `clients list` or compared, it would overflow or mislead."""
    with pytest.raises(IntegrityError, match="is not a time"):
        ClientState.decode(state(time=when))
    data = valid()
    data["time"] = when
    refused(data, "is not a time")


def test_entries_of_one_version_share_its_vector() -> None:
    data = valid()
    data["files"].append(["b.txt", *data["files"][0][1:]])
    first, second = decode(data).files
    assert first.version == {CID: SEQ} and first.version is second.version


@pytest.mark.parametrize("where", ["seq", "dot"])
@pytest.mark.parametrize("number", [1.0, True])
def test_a_version_number_that_only_equals_an_integer_is_refused_after_a_valid_one(
    number: Any, where: str
) -> None:
    data = valid()
    row = list(data["files"][0])
    if where == "seq":
        row[4] = [row[4][0], number]
    else:
        row[6] = number
    data["files"].append(["b.txt", *row[1:]])
    with pytest.raises(IntegrityError):
        decode(data)
