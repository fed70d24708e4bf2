"""A relay that tampers with what it stores is caught (DESIGN §2.5): every modified, truncated,
swapped, replayed or foreign object, and a weakened header, is refused by the puller with one
line naming the relay object, exit status 1, and nothing written to its local folder."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from .clients import Client, Cluster, tree

TEMPER = Callable[[Path, str], str]
"""Tamper with the relay at ``root`` given the pusher's client id; return the object's name."""


def relay_root(cluster: Cluster) -> Path:
    """The folder of a ``file://`` relay."""
    return Path(cluster.relay.removeprefix("file://"))


def relay_snapshot(root: Path) -> dict[str, bytes]:
    """Every object of the relay by name."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def client_ids(root: Path) -> set[str]:
    """The ids of the clients that published updates."""
    return {p.name for p in (root / "updates").iterdir()} if (root / "updates").exists() else set()


def only_new_id(root: Path, before: set[str]) -> str:
    (cid,) = client_ids(root) - before
    return cid


def assert_refused(run: subprocess.CompletedProcess[str], *names: str) -> None:
    """Exit 1, one error line naming each of ``names``, never a traceback."""
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, run.stderr
    for name in names:
        assert name in errors[0], (name, errors[0])


def folders(root: Path) -> set[str]:
    """Every folder under ``root``."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


# -- one update with several data objects ---------------------------------------------------


@pytest.fixture
def pushed(cluster: Cluster) -> tuple[Client, Client, str]:
    """Bob has synced his own file; then alice pushed update 1: ``new/folder/big.bin`` as
    three chunks (objects 0-2) and ``small.txt`` in a pack (object 3). Returns alice, bob and
    alice's id."""
    relay = relay_root(cluster)
    alice = cluster.add("alice", extra='max_page_size = "64KiB"')
    bob = cluster.add("bob")
    bob.write("mine.txt", "bob's own file")
    bob.sync()
    before = client_ids(relay)
    alice.write("new/folder/big.bin", os.urandom(150_000))
    alice.write("small.txt", "small file of alice")
    alice.sync()
    cid = only_new_id(relay, before)
    objects = sorted((relay / "data" / cid / "0000000001").iterdir())
    assert [p.name for p in objects] == ["000000", "000001", "000002", "000003"]
    return alice, bob, cid


def _data(root: Path, cid: str, index: int) -> str:
    return f"data/{cid}/0000000001/{index:06d}"


def flip_last_data(root: Path, cid: str) -> str:
    name = _data(root, cid, 3)
    flip(root / name, os.path.getsize(root / name) // 2)
    return name


def flip_first_data(root: Path, cid: str) -> str:
    name = _data(root, cid, 0)
    flip(root / name, -1)  # the tag of the last segment
    return name


def flip_envelope_header(root: Path, cid: str) -> str:
    name = _data(root, cid, 3)
    flip(root / name, 10)  # inside the salt
    return name


def flip_manifest(root: Path, cid: str) -> str:
    name = f"updates/{cid}/0000000001"
    flip(root / name, os.path.getsize(root / name) // 2)
    return name


def truncate_data(root: Path, cid: str) -> str:
    name = _data(root, cid, 3)
    path = root / name
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) - 1])
    return name


def truncate_data_to_header(root: Path, cid: str) -> str:
    name = _data(root, cid, 1)
    path = root / name
    path.write_bytes(path.read_bytes()[:8])
    return name


def truncate_manifest(root: Path, cid: str) -> str:
    name = f"updates/{cid}/0000000001"
    path = root / name
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    return name


def swap_chunks(root: Path, cid: str) -> str:
    a, b = root / _data(root, cid, 0), root / _data(root, cid, 1)
    content_a, content_b = a.read_bytes(), b.read_bytes()
    assert len(content_a) == len(content_b)  # indistinguishable by size
    a.write_bytes(content_b)
    b.write_bytes(content_a)
    return _data(root, cid, 0)


def swap_chunk_and_pack(root: Path, cid: str) -> str:
    a, b = root / _data(root, cid, 2), root / _data(root, cid, 3)
    content_a, content_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(content_b)
    b.write_bytes(content_a)
    return _data(root, cid, 2)


def manifest_as_data(root: Path, cid: str) -> str:
    name = _data(root, cid, 3)
    (root / name).write_bytes((root / f"updates/{cid}/0000000001").read_bytes())
    return name


@pytest.mark.parametrize(
    "tamper",
    [
        flip_last_data,
        flip_first_data,
        flip_envelope_header,
        flip_manifest,
        truncate_data,
        truncate_data_to_header,
        truncate_manifest,
        swap_chunks,
        swap_chunk_and_pack,
        manifest_as_data,
    ],
)
def test_tampered_object_is_refused_and_nothing_is_written_locally(
    cluster: Cluster, pushed: tuple[Client, Client, str], tamper: TEMPER
) -> None:
    _, bob, cid = pushed
    before, before_folders = tree(bob.root), folders(bob.root)
    name = tamper(relay_root(cluster), cid)
    run = bob.sync(check=False)
    assert_refused(run, name)
    assert tree(bob.root) == before
    assert folders(bob.root) == before_folders
    # refused again on the next round: never acknowledged, never applied
    assert_refused(bob.sync(check=False), name)
    assert tree(bob.root) == before


def test_untampered_update_of_several_objects_is_applied(
    pushed: tuple[Client, Client, str],
) -> None:
    alice, bob, _ = pushed
    bob.sync()
    big = "new/folder/big.bin"
    assert (bob.root / big).read_bytes() == (alice.root / big).read_bytes()
    assert (bob.root / "small.txt").read_text() == "small file of alice"


def test_object_truncated_at_a_segment_boundary_is_refused(cluster: Cluster) -> None:
    """Dropping whole trailing 64 KiB segments leaves every remaining segment authentic: only
    the last-segment flag catches it."""
    relay = relay_root(cluster)
    alice, bob = cluster.add("alice"), cluster.add("bob")
    bob.sync()
    before_ids = client_ids(relay)
    alice.write("large.bin", os.urandom(200_000))
    alice.sync()
    cid = only_new_id(relay, before_ids)
    name = f"data/{cid}/0000000001/000000"
    path = relay / name
    header, segment = 4 + 1 + 16, 64 * 1024 + 16
    blob = path.read_bytes()
    assert len(blob) > header + 3 * segment
    path.write_bytes(blob[: header + 2 * segment])
    before = tree(bob.root)
    assert_refused(bob.sync(check=False), name)
    assert tree(bob.root) == before


# -- replayed, reordered and foreign manifests ----------------------------------------------


def test_manifest_replayed_under_a_later_sequence_number_is_refused(cluster: Cluster) -> None:
    relay = relay_root(cluster)
    alice, bob = cluster.add("alice"), cluster.add("bob")
    bob.sync()
    before_ids = client_ids(relay)
    alice.write("doc.txt", "version 1")
    alice.sync()
    cid = only_new_id(relay, before_ids)
    first = (relay / f"updates/{cid}/0000000001").read_bytes()
    bob.sync()
    assert (bob.root / "doc.txt").read_text() == "version 1"
    alice.write("doc.txt", "version 2, longer")
    alice.write("other.txt", "other")
    alice.sync()
    name = f"updates/{cid}/0000000002"
    (relay / name).write_bytes(first)
    before = tree(bob.root)
    assert_refused(bob.sync(check=False), name)
    assert tree(bob.root) == before


def test_manifests_swapped_between_sequence_numbers_are_refused(cluster: Cluster) -> None:
    relay = relay_root(cluster)
    alice, bob = cluster.add("alice"), cluster.add("bob")
    bob.write("mine.txt", "bob")
    bob.sync()
    before_ids = client_ids(relay)
    alice.write("doc.txt", "version 1")
    alice.sync()
    alice.write("doc.txt", "version 2")
    alice.sync()
    cid = only_new_id(relay, before_ids)
    one, two = relay / f"updates/{cid}/0000000001", relay / f"updates/{cid}/0000000002"
    content_one, content_two = one.read_bytes(), two.read_bytes()
    one.write_bytes(content_two)
    two.write_bytes(content_one)
    before = tree(bob.root)
    assert_refused(bob.sync(check=False), f"updates/{cid}/0000000001")
    assert tree(bob.root) == before


def test_manifest_copied_from_another_repository_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    relay = relay_root(cluster)
    alice, bob = cluster.add("alice"), cluster.add("bob")
    bob.write("mine.txt", "bob")
    bob.sync()
    before_ids = client_ids(relay)
    alice.write("doc.txt", "alice in repository one")
    alice.sync()
    cid = only_new_id(relay, before_ids)
    bob.sync()

    # a second repository, same passphrase, same client name
    other = Cluster(tmp_path / "other", f"file://{tmp_path / 'relay2'}", cluster.env)
    alice2 = other.add("alice")
    alice2.write("evil.txt", "from the other repository")
    alice2.sync()
    other_relay = relay_root(other)
    (other_cid,) = client_ids(other_relay)
    foreign = other_relay / f"updates/{other_cid}/0000000001"
    name = f"updates/{cid}/0000000002"
    (relay / name).parent.mkdir(parents=True, exist_ok=True)  # pruned once emptied
    (relay / name).write_bytes(foreign.read_bytes())
    for data in (other_relay / f"data/{other_cid}/0000000001").iterdir():
        target = relay / f"data/{cid}/0000000002/{data.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.read_bytes())

    before = tree(bob.root)
    assert_refused(bob.sync(check=False), name)
    assert tree(bob.root) == before
    assert not (bob.root / "evil.txt").exists()


# -- the repository header ------------------------------------------------------------------


def lower_argon2_memory(header: dict[str, object]) -> None:
    kdf = header["kdf"]
    assert isinstance(kdf, dict)
    kdf.update(memory_cost=1024, iterations=1, lanes=1)


def change_kdf_salt(header: dict[str, object]) -> None:
    kdf = header["kdf"]
    assert isinstance(kdf, dict)
    kdf["salt"] = base64.b64encode(bytes(16)).decode()


def raise_kdf_cost(header: dict[str, object]) -> None:
    """Not a weakening, but still another key: the wrapped key no longer opens."""
    kdf = header["kdf"]
    assert isinstance(kdf, dict)
    kdf["iterations"] = int(kdf["iterations"]) + 1


def switch_kdf_to_scrypt(header: dict[str, object]) -> None:
    kdf = header["kdf"]
    assert isinstance(kdf, dict)
    header["kdf"] = {"name": "scrypt", "n": 2, "r": 1, "p": 1, "salt": kdf["salt"]}


def cipher_to_chacha(header: dict[str, object]) -> None:
    header["cipher"] = "chacha20-poly1305"


def cipher_to_fernet(header: dict[str, object]) -> None:
    header["cipher"] = "fernet"


def cipher_to_plain(header: dict[str, object]) -> None:
    header["cipher"] = "plain"


def cipher_unknown(header: dict[str, object]) -> None:
    header["cipher"] = "rot13"


def garble_wrapped_key(header: dict[str, object]) -> None:
    header["key"] = "not base64!"


def drop_wrapped_key(header: dict[str, object]) -> None:
    header["key"] = None


def checksum_to_md5(header: dict[str, object]) -> None:
    header["checksum"] = "md5"


def other_repository_id(header: dict[str, object]) -> None:
    header["id"] = "0" * 32


def future_version(header: dict[str, object]) -> None:
    header["version"] = 99


@pytest.mark.parametrize(
    "change",
    [
        lower_argon2_memory,
        change_kdf_salt,
        raise_kdf_cost,
        switch_kdf_to_scrypt,
        cipher_to_chacha,
        cipher_to_fernet,
        cipher_to_plain,
        cipher_unknown,
        garble_wrapped_key,
        drop_wrapped_key,
        checksum_to_md5,
        other_repository_id,
        future_version,
    ],
)
def test_modified_header_is_refused_before_any_transfer(
    cluster: Cluster, change: Callable[[dict[str, object]], None]
) -> None:
    relay = relay_root(cluster)
    alice, bob = cluster.add("alice"), cluster.add("bob")
    alice.write("doc.txt", "alice")
    alice.sync()
    bob.sync()
    alice.write("later.txt", "pushed after bob's first round")
    alice.sync()
    bob.write("secret.txt", "bob's new file: must not leave unencrypted")
    header_path = relay / "escale.json"
    header = json.loads(header_path.read_text())
    change(header)
    header_path.write_text(json.dumps(header))
    objects = relay_snapshot(relay)
    before = tree(bob.root)
    assert_refused(bob.sync(check=False), "escale.json")
    assert tree(bob.root) == before
    assert relay_snapshot(relay) == objects  # nothing pushed, not even a client state


def test_update_larger_than_a_write_batch_is_refused_whole(cluster: Cluster) -> None:
    """4,097 files in two packs of 64 KiB: the first pack's 4,096 files are verified and staged
    before the second pack is read; its tampering must still leave the folder untouched."""
    relay = relay_root(cluster)
    alice = cluster.add("alice", extra='max_page_size = "64KiB"')
    bob = cluster.add("bob")
    bob.write("mine.txt", "bob")
    bob.sync()
    before_ids = client_ids(relay)
    for i in range(4097):
        alice.write(f"d{i // 1000}/{i:04d}", os.urandom(16))
    alice.sync()
    cid = only_new_id(relay, before_ids)
    objects = sorted((relay / "data" / cid / "0000000001").iterdir())
    assert len(objects) == 2
    flip(objects[-1], -1)
    before = tree(bob.root)
    assert_refused(bob.sync(check=False), f"data/{cid}/0000000001/{objects[-1].name}")
    assert tree(bob.root) == before


def test_tampered_update_leaves_a_conflicting_local_file_in_place(cluster: Cluster) -> None:
    """Bob's edit would lose a conflict to alice's newer one (and be renamed to a conflict
    copy), but alice's update is tampered with: bob's file keeps its name."""
    relay = relay_root(cluster)
    alice, bob = cluster.add("alice"), cluster.add("bob")
    alice.write("shared.txt", "v0", mtime=1_600_000_000)
    before_ids = client_ids(relay)
    alice.sync()
    cid = only_new_id(relay, before_ids)
    bob.sync()
    bob.write("shared.txt", "bob's edit", mtime=1_600_000_010)
    bob.sync()
    alice.write("shared.txt", "alice's newer edit", mtime=1_600_001_000)
    alice.sync()
    name = f"data/{cid}/0000000002/000000"
    flip(relay / name, -1)
    before = tree(bob.root)
    assert_refused(bob.sync(check=False), name)
    assert tree(bob.root) == before
