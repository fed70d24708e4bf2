"""A hostile client holding the repository key cannot make a puller write outside its folder
(DESIGN §2.6): its authentic manifests with unsafe paths are refused, and nothing is written
outside the folder, nor through a symlink in it.

The hostile updates are forged in-process with the library, as a client named ``mallory``
would write them; the puller is a real ``escale`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from escale_core.address import parse_relay_url
from escale_core.checksum import checksum_factory
from escale_core.crypto import KIND_MANIFEST, KIND_PACK
from escale_core.manifest import Deletion, FileEntry, Manifest, ObjectRef
from escale_core.plugins import get_plugins
from escale_core.relay import Relay, open_relay
from escale_core.repository import Repository, data_name, open_repository, update_name

from .clients import PASSPHRASE, Client, Cluster, tree


@dataclass
class Forged:
    """A hostile update: its manifest's name and the client id that wrote it."""

    name: str
    cid: str


def checksum(cluster: Cluster, content: bytes) -> str:
    """The content's checksum in the repository's algorithm."""
    relay, repo = open_repo(cluster)
    relay.close()
    hasher = checksum_factory(repo.checksum, get_plugins().checksums)()
    hasher.update(content)
    return hasher.hexdigest()


def forge(
    cluster: Cluster,
    files: list[tuple[str, bytes]],
    deletions: tuple[tuple[str, str], ...] = (),
    *,
    seq: int = 1,
    wrong_checksum: bool = False,
    mtime_ns: int = 1_600_000_000 * 10**9,
) -> Forged:
    """Publish update ``seq`` of client ``mallory``: ``files`` (path, content) in one pack,
    and tombstones (path, base checksum); paths are written as given, unchecked."""
    plugins = get_plugins()
    relay, repo = open_repo(cluster)
    cid = repo.client_id("mallory")
    manifest = Manifest(repo.id, cid, seq, repo.checksum, 1, time.time())
    pack = b""
    for path, content in files:
        hasher = checksum_factory(repo.checksum, plugins.checksums)()
        hasher.update(b"something else" if wrong_checksum else content)
        manifest.files.append(
            FileEntry(
                path,
                len(content),
                mtime_ns,
                hasher.hexdigest(),
                {cid: seq},
                cid,
                seq,
                1,
                [(0, len(pack), len(content))],
            )
        )
        pack += content
    manifest.names[cid] = "mallory"
    # a tombstone that descends from every version it might meet (base is unused: format 2
    # decides by version vectors)
    manifest.deletions = [
        Deletion(
            path, {cid: seq, **everyone(cluster, repo)}, cid, seq, 10**9, 1_600_000_000 * 10**9
        )
        for path, _base in deletions
    ]
    if files:
        manifest.objects.append(ObjectRef("pack", len(pack), False))
        relay.write_stream(
            data_name(cid, seq, 0), repo.seal_data(KIND_PACK, cid, seq, 0, iter([pack]))
        )
    repo.write_manifest(manifest)
    relay.close()
    return Forged(update_name(cid, seq), cid)


def everyone(cluster: Cluster, repo: object) -> dict[str, int]:
    """A vector far ahead of every other client's versions."""
    return {repo.client_id(name): 10**9 for name in cluster.clients}  # type: ignore[attr-defined]


def everything(base: Path) -> dict[str, bytes]:
    """Every file under ``base`` except relay objects and client state databases."""
    out = {}
    for path in base.rglob("*"):
        rel = path.relative_to(base).as_posix()
        if rel.startswith("relay/") or "/state/" in rel or path.is_symlink():
            continue
        if path.is_file():
            out[rel] = path.read_bytes()
    return out


def assert_refused(run: subprocess.CompletedProcess[str], name: str) -> None:
    """Exit 1, one error line naming ``name``, never a traceback."""
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, run.stderr
    assert name in errors[0], (name, errors[0])


@pytest.fixture
def bob(cluster: Cluster, tmp_path: Path) -> Client:
    """A puller that synced once (the repository exists), with a folder ``outside`` next to
    its tree and a file of its own."""
    client = cluster.add("bob")
    client.write("mine.txt", "bob's own file")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("outside the synced folder")
    client.sync()
    return client


UNSAFE_PATHS = [
    "../x",
    "../../x",
    "a/../../x",
    "a/../x",
    "/etc/x",
    "{tmp}/outside/x",
    "x\x00y",
    "..\\x",
    "a\\..\\..\\x",
    "C:x",
    "C:/x",
    "c:\\x",
    ".hidden",
    "a/.hidden/x",
    ".git/config",
    "./x",
    "a/./x",
    "a//x",
    "",
    "not utf-8 \udcff.txt",  # a lone surrogate: no UTF-8 name, no database row can hold it
]


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_manifest_with_unsafe_path_is_refused_and_nothing_is_written(
    cluster: Cluster, bob: Client, tmp_path: Path, path: str
) -> None:
    path = path.replace("{tmp}", str(tmp_path))
    before, folder = everything(tmp_path), tree(bob.root)
    forged = forge(cluster, [("ok.txt", b"harmless"), (path, b"planted")])
    assert_refused(bob.sync(check=False), forged.name)
    assert everything(tmp_path) == before
    assert tree(bob.root) == folder  # the whole update is refused, ok.txt too
    assert not Path("/etc/x").exists()
    assert not Path("/x").exists()


@pytest.mark.parametrize("path", ["../outside/victim.txt", "{tmp}/outside/victim.txt"])
def test_tombstone_with_unsafe_path_is_refused(
    cluster: Cluster, bob: Client, tmp_path: Path, path: str
) -> None:
    victim = tmp_path / "outside" / "victim.txt"
    base = checksum(cluster, victim.read_bytes())
    path = path.replace("{tmp}", str(tmp_path))
    # bob's folder is tmp/clients/bob/folder: reach tmp/outside from there
    if path.startswith(".."):
        path = "../../../" + path.removeprefix("../")
    forged = forge(cluster, [], ((path, base),))
    before = everything(tmp_path)
    assert_refused(bob.sync(check=False), forged.name)
    assert victim.read_text() == "outside the synced folder"
    assert everything(tmp_path) == before


def test_write_through_a_symlinked_folder_is_refused(
    cluster: Cluster, bob: Client, tmp_path: Path
) -> None:
    (bob.root / "sub").symlink_to(tmp_path / "outside", target_is_directory=True)
    before, folder = everything(tmp_path), tree(bob.root)
    forged = forge(cluster, [("ok.txt", b"harmless"), ("sub/x", b"planted")])
    assert_refused(bob.sync(check=False), forged.name)
    assert not (tmp_path / "outside" / "x").exists()
    assert everything(tmp_path) == before
    assert tree(bob.root) == folder
    assert (bob.root / "sub").is_symlink()


def test_write_through_a_symlink_deep_in_the_folder_is_refused(
    cluster: Cluster, bob: Client, tmp_path: Path
) -> None:
    (bob.root / "a").mkdir()
    (bob.root / "a" / "b").symlink_to(tmp_path / "outside", target_is_directory=True)
    before = everything(tmp_path)
    forged = forge(cluster, [("a/b/c/x", b"planted")])
    assert_refused(bob.sync(check=False), forged.name)
    assert not (tmp_path / "outside" / "c").exists()
    assert everything(tmp_path) == before


def test_tombstone_through_a_symlinked_folder_is_refused(
    cluster: Cluster, bob: Client, tmp_path: Path
) -> None:
    victim = tmp_path / "outside" / "victim.txt"
    (bob.root / "sub").symlink_to(tmp_path / "outside", target_is_directory=True)
    forged = forge(cluster, [], (("sub/victim.txt", checksum(cluster, victim.read_bytes())),))
    before = everything(tmp_path)
    assert_refused(bob.sync(check=False), forged.name)
    assert victim.read_text() == "outside the synced folder"
    assert everything(tmp_path) == before


def test_file_symlink_is_replaced_never_followed(
    cluster: Cluster, bob: Client, tmp_path: Path
) -> None:
    """A symlinked file in the folder is not synced; an incoming file of that name replaces
    the link itself and never writes to its target."""
    victim = tmp_path / "outside" / "victim.txt"
    (bob.root / "link.txt").symlink_to(victim)
    forge(cluster, [("link.txt", b"incoming")])
    bob.sync()
    assert victim.read_text() == "outside the synced folder"
    assert not (bob.root / "link.txt").is_symlink()
    assert (bob.root / "link.txt").read_bytes() == b"incoming"


def test_content_not_matching_its_checksum_is_refused(
    cluster: Cluster, bob: Client, tmp_path: Path
) -> None:
    before, folder = everything(tmp_path), tree(bob.root)
    forged = forge(cluster, [("ok.txt", b"fine"), ("lie.txt", b"lies")], wrong_checksum=True)
    assert_refused(bob.sync(check=False), forged.name)
    assert tree(bob.root) == folder
    assert everything(tmp_path) == before
    assert not any(name.startswith(".escale-tmp-") for name in os.listdir(bob.root))


@pytest.mark.parametrize("mtime_ns", [10**30, 2**63, -(2**63)])
def test_an_absurd_modification_time_is_refused_in_one_line(
    cluster: Cluster, bob: Client, tmp_path: Path, mtime_ns: int
) -> None:
    """Before format 2 such a time ended in an internal OverflowError and blocked every other
    client's updates."""
    before = everything(tmp_path)
    forged = forge(cluster, [("when.txt", b"never")], mtime_ns=mtime_ns)
    assert_refused(bob.sync(check=False), forged.name)
    assert everything(tmp_path) == before


def test_an_update_naming_a_path_both_file_and_folder_is_refused_whole(
    cluster: Cluster, bob: Client, tmp_path: Path
) -> None:
    """No honest client can hold ``d`` and ``d/e`` as files at once: before, ``ok.txt`` was
    placed and then the update failed on the clash."""
    before, folder = everything(tmp_path), tree(bob.root)
    forged = forge(cluster, [("ok.txt", b"harmless"), ("d/e", b"inside"), ("d", b"a file")])
    assert_refused(bob.sync(check=False), forged.name)
    assert tree(bob.root) == folder
    assert everything(tmp_path) == before


def open_repo(cluster: Cluster) -> tuple[Relay, Repository]:
    """The cluster's relay and repository, opened as a key holder (``mallory``) would."""
    plugins = get_plugins()
    relay = open_relay(parse_relay_url(cluster.relay), plugins.relays)
    repo = open_repository(
        relay,
        plugins.ciphers,
        PASSPHRASE.encode(),
        create_cipher="aes-256-gcm",
        create_checksum="sha256",
    )
    return relay, repo


def carol_pushes(cluster: Cluster) -> Client:
    """Another client with an update of its own: a refused update must not block it."""
    carol = cluster.add("carol")
    carol.write("carol.txt", "from carol")
    carol.sync()
    return carol


@pytest.mark.parametrize("change", [{"memory_cost": 2**40}, {"iterations": 2.0}])
def test_a_header_with_kdf_parameters_out_of_bounds_is_refused(
    cluster: Cluster, bob: Client, change: dict[str, object]
) -> None:
    """Huge parameters cost minutes or gigabytes before the wrong key shows; a float slipped
    through (the header's authentication does not cover the KDF)."""
    header = Path(cluster.relay.removeprefix("file://")) / "escale.json"
    data = json.loads(header.read_text())
    data["kdf"].update(change)
    header.write_text(json.dumps(data))
    dave = cluster.add("dave")  # joins now: it has no header of its own to compare
    run = dave.sync(check=False)
    assert_refused(run, "escale.json")
    assert "KDF parameters are out of bounds" in run.stderr, run.stderr
    assert "tampered header, or one made by an unknown escale" in run.stderr
    assert tree(dave.root) == {}


def test_a_manifest_decompression_bomb_is_refused_and_others_updates_still_apply(
    cluster: Cluster, bob: Client, tmp_path: Path
) -> None:
    """A few KiB that decompress to 300 MiB (beyond the 256 MiB a manifest may have)."""
    carol_pushes(cluster)
    relay, repo = open_repo(cluster)
    cid, seq = repo.client_id("mallory"), 1
    chunker = zstandard.ZstdCompressor().chunker(chunk_size=1 << 20)
    text = json.dumps({"format": "escale-manifest", "version": 2}).encode()[:-1] + b", "
    blob = list(chunker.compress(text))
    for _ in range(300):
        blob += chunker.compress(b" " * (1 << 20))
    blob += [*chunker.compress(b"}"), *chunker.finish()]
    ctx = repo.context("manifest", cid, seq)
    relay.write_stream(update_name(cid, seq), repo.sealer.seal(KIND_MANIFEST, ctx, blob))
    relay.close()
    before = everything(tmp_path)
    run = bob.sync(check=False)
    assert_refused(run, update_name(cid, seq))
    assert "decompresses to more than 256 MiB" in run.stderr, run.stderr
    after = everything(tmp_path)
    assert after.pop("clients/bob/folder/carol.txt") == b"from carol"
    assert after == before


def test_a_data_object_larger_than_its_manifest_says_is_refused(
    cluster: Cluster, bob: Client, tmp_path: Path
) -> None:
    """Read no further than the declared size: the rest of the object is never held."""
    carol_pushes(cluster)
    forged = forge(cluster, [("small.txt", b"tiny")])
    relay, repo = open_repo(cluster)
    name = data_name(forged.cid, 1, 0)
    big = [b"tiny", os.urandom(4 << 20)]  # 4 MiB more than declared, authentic
    relay.write_stream(name, repo.seal_data(KIND_PACK, forged.cid, 1, 0, iter(big)))
    relay.close()
    before = everything(tmp_path)
    run = bob.sync(check=False)
    assert_refused(run, name)
    assert "larger than" in run.stderr, run.stderr
    assert not (bob.root / "small.txt").exists()
    after = everything(tmp_path)
    assert after.pop("clients/bob/folder/carol.txt") == b"from carol"
    assert after == before
