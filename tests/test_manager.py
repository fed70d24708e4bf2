"""The original's manager API on the new engine: the seed's example works in spirit."""

from __future__ import annotations

import configparser
import hashlib
from pathlib import Path

import pytest

from escale_core.errors import IntegrityError, RelayNotFoundError, UsageError
from escale_core.manager import (
    AccessAttributes,
    AccessController,
    ChecksumCache,
    History,
    IndexManager,
    Manager,
    TimeQuotaController,
    get_cache_file,
    get_client_name,
    get_pid_file,
    parse_address,
    parse_section,
)

from .clients import same_tree


def test_manager_example_syncs_two_folders(tmp_path: Path) -> None:
    a, b, relay = tmp_path / "a", tmp_path / "b", tmp_path / "relay"
    (a / "x").mkdir(parents=True)
    (a / "x" / "f.txt").write_text("hello")
    common = {
        "address": None,
        "directory": str(relay),
        "encryption": "aes-256-gcm",
        "passphrase": "pw-123456",
    }
    ma = Manager("file", repository=a, clientname="a", state_dir=tmp_path / "sa", **common)
    mb = IndexManager("file", repository=b, clientname="b", state_dir=tmp_path / "sb", **common)
    ma.run(rounds=1)
    report = mb.sync_once()
    assert report.pulled == ["x/f.txt"] and same_tree(a, b)


def test_manager_with_a_wrong_passphrase_refuses(tmp_path: Path) -> None:
    kwargs = {"directory": str(tmp_path / "relay"), "encryption": "chacha20-poly1305"}
    Manager(
        "file", repository=tmp_path / "a", passphrase="one", state_dir=tmp_path / "s1", **kwargs
    ).sync_once()
    with pytest.raises(IntegrityError, match="wrong passphrase"):
        Manager(
            "file", repository=tmp_path / "b", passphrase="two", state_dir=tmp_path / "s2", **kwargs
        ).sync_once()


def test_access_attributes_and_controller(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    db = tmp_path / "state" / get_cache_file(section="s").name
    db.parent.mkdir()
    attrs = AccessAttributes(db)
    assert attrs.isReadable("f") and attrs.getReadability("f") is None
    attrs.setNotReadable("f")
    attrs.setWritable("f")
    assert not attrs.isReadable("f") and attrs.table("f") == {"f": (False, True)}
    attrs.unsetReadability("f")
    assert attrs.getReadability("f") is None
    ctl = AccessController("s", path=tmp_path, persistent=db, mode="conservative")
    assert ctl.listFiles(basename=lambda n: n == "f") == ["f"]
    assert ctl.readable(["f"]) == ["f"]
    assert ctl.writable("f") == str(tmp_path / "f")  # explicitly w+
    with ctl.confirmPush("f"):
        pass
    assert ctl.writable("f") is None  # a pushed local file is protected in conservative mode
    with pytest.raises(PermissionError):
        ctl.accessor("f").delete()
    assert AccessController("s", path=tmp_path, push_only=True).mode == "upload"


def test_time_quota_controller_pauses_grow_from_half_to_full_refresh() -> None:
    tq = TimeQuotaController(refresh=20, quota=100)
    first = tq.pause()
    for _ in range(20):
        tq.record(False)
    assert 10 <= first < 11 and 19.9 < tq.pause() <= 20
    tq.record(True)
    assert tq.pause() == first
    mb = 1_000_000  # the quota is in MB, as in the original
    assert tq.fits(60 * mb, 40 * mb) and not tq.fits(60 * mb + 1, 40 * mb)


def test_time_quota_controller_refresh_true_is_the_original_30_seconds() -> None:
    assert TimeQuotaController().refresh == TimeQuotaController(refresh=True).refresh == 30
    assert TimeQuotaController(refresh=1).refresh == 1
    with pytest.raises(UsageError, match="refresh must be positive"):
        TimeQuotaController(refresh=0)


def test_time_quota_controller_push_refuses_over_quota_and_rereads_used_space(
    tmp_path: Path,
) -> None:
    reads: list[int] = []

    def used() -> int:
        reads.append(1)
        return 400_000

    slept: list[float] = []
    tq = TimeQuotaController(
        refresh=20, quota=1, quota_read_interval=3600, quota_read_callback=used, sleep=slept.append
    )
    big, small = tmp_path / "big", tmp_path / "small"
    big.write_bytes(b"x" * 700_000)
    small.write_bytes(b"x" * 500_000)
    uploaded: list[str] = []
    assert not tq.push(big, lambda: uploaded.append("big"))
    assert tq.push(small, lambda: uploaded.append("small"))
    assert not tq.push(small, lambda: uploaded.append("again"))  # its own push is counted
    assert uploaded == ["small"] and len(reads) == 1  # read once within the interval
    for _ in range(10):
        tq.record(False)
    tq.pull(small)  # a pull resets the pauses: the next wait is short again
    tq.wait()
    assert slept == [pytest.approx(10, abs=0.1)]


def test_checksum_cache_rereads_only_changed_files(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("one")
    cache = ChecksumCache(History("s", tmp_path / "state"), "sha256")
    first = cache.checksum(tmp_path, "f")
    assert first == cache.checksum(tmp_path, "f")
    (tmp_path / "f").write_text("two!")
    assert cache.checksum(tmp_path, "f") != first
    assert cache.checksum(tmp_path, "missing") is None


def test_helpers_keep_their_original_meaning(tmp_path: Path) -> None:
    assert get_client_name("s", {"client name": "laptop"}) == "laptop"
    assert get_client_name("s", {})
    assert parse_address("webdav://host:8080/dir") == ("webdav", "host", "8080", "dir")
    assert get_pid_file().name == "escale.pid"


def _write_toml(tmp_path: Path, relay: Path, local: Path) -> Path:
    config = tmp_path / "escale.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[s]\npath = "{local}"\nrelay = "{relay}"\n'
        'encryption = "plain"\nclient = "one"\nfile_types = ["txt"]\n'
    )
    return config


def test_manager_takes_parse_section_positionally_as_the_original(tmp_path: Path) -> None:
    local, relay = tmp_path / "a", tmp_path / "relay"
    local.mkdir()
    (local / "f.txt").write_text("x")
    (local / "skip.bin").write_text("y")
    config = _write_toml(tmp_path, relay, local)
    manager = Manager(*parse_section(config, "s"))
    assert manager.client == "one" and manager.path == local
    assert manager.sync_once().pushed == ["f.txt"]  # the section's file_types apply
    factory, args = parse_section(config, "s")
    assert Manager(factory, **args).client == "one"
    assert Manager(factory, args, clientname="two").client == "two"  # keywords override


def test_parse_section_converts_an_original_ini_configparser(tmp_path: Path) -> None:
    local, relay = tmp_path / "a", tmp_path / "relay"
    local.mkdir()
    (local / "f.txt").write_text("x")
    parser = configparser.ConfigParser()
    parser.read_string(
        f"[s]\nlocal path = {local}\nprotocol = file\nrelay path = {relay}\n"
        f"push only = yes\nclient name = old\nmaintainer = me@example.org\ncache = {tmp_path}\n"
    )
    factory, args = parse_section(parser, "s")
    assert args["mode"] == "upload" and args["clientname"] == "old"
    assert args["encryption"] == "plain"  # the original's default
    manager = Manager(factory, args, state_dir=tmp_path / "state")
    assert manager.sync_once().pushed == ["f.txt"]
    assert (relay / "escale.json").exists()


def test_access_controller_reads_the_original_mode_names(tmp_path: Path) -> None:
    def mode(name: str) -> str:
        return AccessController("s", path=tmp_path, persistent=tmp_path / "db", mode=name).mode

    assert mode("protective") == mode("conservative") == "conservative"
    assert mode("sharing") == mode("share") == mode("Shared") == "shared"
    assert mode("upload") == "upload" and mode("download") == "download"
    with pytest.raises(UsageError, match=r"unknown mode 'bogus'.*protective"):
        mode("bogus")
    with pytest.raises(UsageError, match="unknown mode 'preservative'"):  # refused by the original
        mode("preservative")
    with pytest.raises(UsageError, match="unknown mode"):
        Manager("file", repository=tmp_path, directory=str(tmp_path / "r"), mode="both")


def test_parse_address_keeps_the_user_as_the_original() -> None:
    assert parse_address("sftp://me@host/srv") == ("sftp", "me@host", None, "srv")
    assert parse_address("ftp://me@host:21/a/b") == ("ftp", "me@host", "21", "a/b")
    assert parse_address("host:8080/dir") == (None, "host", "8080", "dir")


def test_manager_encryption_true_is_the_default_cipher(tmp_path: Path) -> None:
    common = {"repository": tmp_path / "a", "directory": str(tmp_path / "r")}
    assert Manager("file", encryption=True, passphrase="pw", **common).encryption == "aes-256-gcm"
    assert Manager("file", encryption=False, **common).encryption == "plain"
    with pytest.raises(UsageError, match="needs a passphrase"):
        Manager("file", encryption=True, **common)
    with pytest.raises(UsageError, match=r"unknown encryption 'blowfish'.*aes-256-gcm"):
        Manager("file", encryption="blowfish", passphrase="pw", **common)


def test_manager_filter_local_files_and_checksum(tmp_path: Path) -> None:
    root = tmp_path / "a"
    (root / "tmp").mkdir(parents=True)
    for name in ("a.jpg", "b.txt", "tmp/c.jpg", ".hidden.jpg"):
        (root / name).write_text(name)
    manager = Manager(
        "file",
        repository=root,
        directory=str(tmp_path / "r"),
        filetype=[".JPG"],
        excludedirectory=["tmp"],
        checksum="sha256",
    )
    assert manager.filter(["a.jpg", "b.txt", "tmp/c.jpg", "x/d.jpg", ".h.jpg"]) == [
        "a.jpg",
        "x/d.jpg",
    ]
    assert manager.localFiles() == ["a.jpg"]
    assert manager.checksum("a.jpg") == hashlib.sha256(b"a.jpg").hexdigest()
    mtime, digest = manager.checksum("a.jpg", return_mtime=True)
    assert digest == manager.checksum("a.jpg")
    assert mtime == pytest.approx((root / "a.jpg").stat().st_mtime, abs=1e-6)
    assert manager.checksum("missing") is None


def test_manager_remote_listing_decrypts_the_paths_the_relay_holds(tmp_path: Path) -> None:
    a, relay = tmp_path / "a", tmp_path / "relay"
    (a / "x").mkdir(parents=True)
    (a / "x" / "f.txt").write_text("hello")
    (a / "g.txt").write_text("bye")
    common = {"directory": str(relay), "encryption": "chacha20-poly1305", "passphrase": "pw-1"}
    reader = Manager("file", repository=tmp_path / "b", state_dir=tmp_path / "sb", **common)
    with pytest.raises(RelayNotFoundError):
        reader.remoteListing()  # nothing there: never creates a repository
    assert not relay.exists() or not any(relay.iterdir())
    Manager("file", repository=a, clientname="a", state_dir=tmp_path / "sa", **common).sync_once()
    assert reader.remoteListing() == ["g.txt", "x/f.txt"]
    names = [p.name for p in relay.rglob("*")]
    assert not any("f.txt" in n or "g.txt" in n for n in names)  # the relay saw no names


def _objects(folder: Path, count: int, size: int) -> list[str]:
    """``count`` data objects of ``size`` random bytes in a relay folder (the copy moves them
    as they are: their content is not read as data)."""
    import os

    names = [f"data/{'ab' * 16}/{i:010d}/000001" for i in range(count)]
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(os.urandom(size))
    return names


def test_inter_relay_copy_refreshes_its_locks_so_no_one_takes_them_during_a_long_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import threading
    import time

    from escale_core.locks import LockBusyError, RelayLock
    from escale_core.manager import Backup, inter_relay_copy

    maintenance = importlib.import_module("escale_core.ops.maintenance")

    # a lock unrefreshed for 1 s is stale; the copy (8 objects, 0.3 s each) lasts longer
    monkeypatch.setattr(maintenance, "LOCK_TIMEOUT", 1.0)
    monkeypatch.setattr(maintenance, "REFRESH_EVERY", 0.2)
    (tmp_path / "relay").mkdir()
    _objects(tmp_path / "relay", 8, 1000)
    source, dest, other = Backup(tmp_path / "relay"), Backup(tmp_path / "copy"), None
    slow_read = source.read_stream

    def read_stream(name: str):  # type: ignore[no-untyped-def]
        time.sleep(0.3)  # a slow relay: each object takes a while
        return slow_read(name)

    source.read_stream = read_stream  # type: ignore[method-assign]
    taken: list[RelayLock] = []
    done = threading.Event()

    def contend() -> None:
        held = tmp_path / "relay" / "locks" / "maintenance"
        while not held.exists() and not done.is_set():
            time.sleep(0.01)  # the copy holds the lock: from now on, try to take it
        while not done.is_set():
            try:
                taken.append(RelayLock(other, "maintenance", wait=0, settle=0.05).acquire())
                return
            except LockBusyError:
                time.sleep(0.05)

    other = Backup(tmp_path / "relay")
    contender = threading.Thread(target=contend)
    try:
        contender.start()
        assert inter_relay_copy(source, dest, safe=(True, False)) == []
    finally:
        done.set()
        contender.join()
        for lock in taken:
            lock.release()
        source.close()
        dest.close()
        other.close()
    assert taken == []


def test_inter_relay_copy_of_named_objects_streams_them_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    from escale_core.manager import Backup, inter_relay_copy

    (tmp_path / "relay").mkdir()
    names = _objects(tmp_path / "relay", 1, 48 << 20)
    source, dest = Backup(tmp_path / "relay"), Backup(tmp_path / "copy")
    tracemalloc.start()
    try:
        assert inter_relay_copy(source, dest, files=names) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        source.close()
        dest.close()
    assert (tmp_path / "copy" / names[0]).read_bytes() == (
        tmp_path / "relay" / names[0]
    ).read_bytes()
    assert peak < 16 << 20, f"{peak} bytes at the peak for a 48 MiB object"
