"""LocalState: records loaded on first use, and the stat snapshot that lets an idle round skip
them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from escale_core.history import FileRecord, LocalState
from escale_core.local import FileStat, Filters, scan
from escale_core.state import state_file

NO_FILTERS = Filters([], [], [], [], [])


def settled(info: FileStat, checksum: str = "c1") -> FileRecord:
    return FileRecord(info.size, info.mtime_ns, info.inode, checksum, checksum, "local")


def folder_with_files(root: Path, count: int = 3) -> dict[str, FileStat]:
    (root / "sub").mkdir(parents=True)
    for i in range(count):
        (root / "sub" / f"f{i}").write_bytes(b"x" * i)
    return scan(root, NO_FILTERS)


def state_with(tmp_path: Path, files: dict[str, FileStat]) -> LocalState:
    state = LocalState("s", tmp_path / "state")
    for path, info in files.items():
        state.set(path, settled(info))
    state.save_snapshot()
    state.close()
    return LocalState("s", tmp_path / "state")


def test_records_survive_a_reopen_and_are_loaded_only_when_asked(tmp_path: Path) -> None:
    files = folder_with_files(tmp_path / "A")
    state = state_with(tmp_path, files)
    assert state._files is None  # nothing loaded yet
    assert set(state.files) == set(files)
    assert state.files["sub/f2"] == settled(files["sub/f2"])


def test_an_untouched_folder_matches_the_snapshot_without_loading_records(tmp_path: Path) -> None:
    files = folder_with_files(tmp_path / "A")
    state = state_with(tmp_path, files)
    assert state.unchanged(scan(tmp_path / "A", NO_FILTERS))
    assert state._files is None


def test_an_edited_added_or_deleted_file_does_not_match(tmp_path: Path) -> None:
    root = tmp_path / "A"
    state = state_with(tmp_path, folder_with_files(root))
    (root / "sub" / "f1").write_bytes(b"changed")
    assert not state.unchanged(scan(root, NO_FILTERS))
    state = state_with(tmp_path / "2", folder_with_files(tmp_path / "B"))
    (tmp_path / "B" / "new").write_bytes(b"new")
    assert not state.unchanged(scan(tmp_path / "B", NO_FILTERS))
    state = state_with(tmp_path / "3", folder_with_files(tmp_path / "C"))
    (tmp_path / "C" / "sub" / "f0").unlink()
    assert not state.unchanged(scan(tmp_path / "C", NO_FILTERS))


def test_any_change_of_a_record_drops_the_snapshot(tmp_path: Path) -> None:
    files = folder_with_files(tmp_path / "A")
    state = state_with(tmp_path, files)
    state.forget("sub/f0")
    state.commit()
    assert not state.unchanged(files)
    state.close()
    reopened = LocalState("s", tmp_path / "state")
    assert not reopened.unchanged(files)


def test_no_snapshot_while_a_file_is_not_settled(tmp_path: Path) -> None:
    files = folder_with_files(tmp_path / "A")
    state = LocalState("s", tmp_path / "state")
    for path, info in files.items():
        state.set(path, settled(info))
    info = files["sub/f1"]
    state.set("sub/f1", FileRecord(info.size, info.mtime_ns, info.inode, "c2", "c1", "local"))
    state.save_snapshot()
    assert not state.unchanged(files)  # f1 changed since it was synced: it must be pushed


@pytest.mark.parametrize(
    "change",
    ["format = 'marshal-0-py2.7'", "data = x'00ff'"],
    ids=["written by another python", "corrupt"],
)
def test_a_snapshot_this_escale_cannot_read_is_ignored(tmp_path: Path, change: str) -> None:
    files = folder_with_files(tmp_path / "A")
    state_with(tmp_path, files).close()
    db = sqlite3.connect(state_file("s", tmp_path / "state"))
    db.execute(f"UPDATE snapshot SET {change}")
    db.commit()
    db.close()
    assert not LocalState("s", tmp_path / "state").unchanged(files)
