"""Staged writes: verified files appear only at commit, new folders move into place whole."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from escale_core.errors import IntegrityError
from escale_core.local import TEMP_PREFIX, remove_temp_files
from escale_core.staging import StagedWrites


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stage(staged: StagedWrites, path: str, data: bytes, mtime_ns: int = 10**18) -> None:
    staged.stage(path, [data], mtime_ns=mtime_ns, checksum=sha(data), factory=hashlib.sha256)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_nothing_appears_before_commit_and_everything_after(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    staged = StagedWrites(tmp_path)
    stage(staged, "old/f", b"in an existing folder")
    stage(staged, "new/deep/g", b"in a new folder")
    stage(staged, "new/h", b"beside it")
    assert not (tmp_path / "old" / "f").exists() and not (tmp_path / "new").exists()
    done = staged.commit()
    assert sorted(path for path, _, _ in done) == ["new/deep/g", "new/h", "old/f"]
    assert (tmp_path / "new" / "deep" / "g").read_bytes() == b"in a new folder"
    assert (tmp_path / "old" / "f").read_bytes() == b"in an existing folder"
    assert os.stat(tmp_path / "new" / "h").st_mtime_ns == 10**18
    for path, info, checksum in done:
        st = os.stat(tmp_path / path)
        assert info == (st.st_size, st.st_mtime_ns, st.st_ino)
        assert checksum == sha((tmp_path / path).read_bytes())
    assert leftovers(tmp_path) == []


def test_a_new_folder_is_staged_as_one_hidden_folder(tmp_path: Path) -> None:
    staged = StagedWrites(tmp_path)
    for i in range(20):
        stage(staged, f"new/sub{i % 3}/f{i}", bytes([i]))
    hidden = [p.name for p in tmp_path.iterdir()]
    assert len(hidden) == 1 and hidden[0].startswith(TEMP_PREFIX)
    staged.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]
    assert len(list((tmp_path / "new").rglob("f*"))) == 20


def test_a_folder_created_meanwhile_keeps_its_files(tmp_path: Path) -> None:
    staged = StagedWrites(tmp_path)
    stage(staged, "new/a", b"ours")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "users").write_bytes(b"theirs")
    done = staged.commit()
    assert [path for path, _, _ in done] == ["new/a"]
    assert (tmp_path / "new" / "a").read_bytes() == b"ours"
    assert (tmp_path / "new" / "users").read_bytes() == b"theirs"
    assert leftovers(tmp_path) == []


def test_a_symlink_on_the_way_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(IntegrityError, match="symlink"):
        stage(StagedWrites(root), "link/f", b"x")
    assert list(outside.iterdir()) == []


def test_a_symlink_put_where_a_new_folder_goes_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    staged = StagedWrites(root)
    stage(staged, "new/f", b"x")
    (root / "new").symlink_to(outside)
    with pytest.raises(IntegrityError, match="symlink"):
        staged.commit()
    assert list(outside.iterdir()) == []
    assert leftovers(root) == []


def test_content_that_does_not_match_leaves_nothing(tmp_path: Path) -> None:
    staged = StagedWrites(tmp_path)
    stage(staged, "new/good", b"good")
    with pytest.raises(IntegrityError, match="does not match"):
        staged.stage(
            "new/bad", [b"bad"], mtime_ns=None, checksum=sha(b"other"), factory=hashlib.sha256
        )
    staged.abort()
    assert list(tmp_path.iterdir()) == []


def test_the_same_name_twice_in_a_new_folder_is_refused(tmp_path: Path) -> None:
    staged = StagedWrites(tmp_path)
    stage(staged, "new/f", b"1")
    with pytest.raises(IntegrityError, match="twice"):
        stage(staged, "new/f", b"2")
    staged.abort()
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    staged = StagedWrites(tmp_path)
    (tmp_path / "old").mkdir()
    stage(staged, "old/f", b"1")
    stage(staged, "new/deep/f", b"2")
    (tmp_path / "old" / "keep").write_bytes(b"user's")
    # killed before commit: no abort
    assert len(leftovers(tmp_path)) == 2
    assert remove_temp_files(tmp_path) == 2
    assert leftovers(tmp_path) == []
    assert (tmp_path / "old" / "keep").read_bytes() == b"user's"
