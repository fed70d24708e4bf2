"""The local folder: the scan and writes started early (the background scan: test_scanner)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from escale_core.ignore import IGNORE_FILE, IgnoreFileError
from escale_core.local import (
    TEMP_PREFIX,
    Filters,
    scan,
    with_ignore,
)
from escale_core.patterns import compile_pattern
from escale_core.writeback import start_writeback

NO_FILTERS = Filters([], [], [], [], [])


def test_scan_lists_regular_files_with_their_size_mtime_and_inode(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"12345")
    (tmp_path / "top").write_bytes(b"")
    found = scan(tmp_path, NO_FILTERS)
    assert set(found) == {"a/b/f", "top"}
    info = os.lstat(tmp_path / "a" / "b" / "f")
    assert found["a/b/f"] == (5, info.st_mtime_ns, info.st_ino)
    assert found["a/b/f"].size == 5


def test_scan_follows_a_symlinked_root_but_no_symlink_inside(tmp_path: Path) -> None:
    real, outside = tmp_path / "real", tmp_path / "outside"
    (real / "sub").mkdir(parents=True)
    outside.mkdir()
    (real / "sub" / "f").write_bytes(b"x")
    (outside / "secret").write_bytes(b"s")
    (real / "linked-folder").symlink_to(outside)
    (real / "linked-file").symlink_to(outside / "secret")
    (tmp_path / "root").symlink_to(real)
    assert set(scan(tmp_path / "root", NO_FILTERS)) == {"sub/f"}


def test_scan_skips_hidden_names_and_reports_escale_temporary_files(tmp_path: Path) -> None:
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "f").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / f"{TEMP_PREFIX}abc").write_bytes(b"partial")
    (tmp_path / "d" / ".other").write_bytes(b"x")
    temp: list[str] = []
    assert scan(tmp_path, NO_FILTERS, temp) == {}
    assert temp == [f"{tmp_path}/d/{TEMP_PREFIX}abc"]


def test_scan_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert scan(tmp_path / "missing", NO_FILTERS) == {}


def test_writeback_keeps_the_content(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = os.urandom(3 << 20)
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        start_writeback(out.fileno())
        out.write(b"tail")
    assert path.read_bytes() == data + b"tail"


def test_scan_applies_escaleignore_and_keeps_the_file_itself(tmp_path: Path) -> None:
    for rel in ["keep.txt", "x.log", "build/out.o", "src/build/deep.o", "src/a.c", "cache/c"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / IGNORE_FILE).write_text("# comment\nbuild/\n*.log\n/cache\n")
    filters = with_ignore(NO_FILTERS, tmp_path)
    assert set(scan(tmp_path, filters)) == {IGNORE_FILE, "keep.txt", "src/a.c"}
    assert filters.accepts_path(IGNORE_FILE) and filters.accepts_path("src/a.c")
    assert not filters.accepts_path("src/build/deep.o") and not filters.accepts_path("a/b.log")
    assert not filters.accepts_path("cache/c") and filters.accepts_path("src/cache/c")
    # the section's own filters never hide the .escaleignore
    typed = with_ignore(Filters(["c"], [], [], [], []), tmp_path)
    assert set(scan(tmp_path, typed)) == {IGNORE_FILE, "src/a.c"}


def test_an_empty_or_comment_only_escaleignore_costs_the_scan_nothing(tmp_path: Path) -> None:
    assert with_ignore(NO_FILTERS, tmp_path) is NO_FILTERS
    (tmp_path / IGNORE_FILE).write_text("# nothing yet\n\n")
    assert with_ignore(NO_FILTERS, tmp_path).accepts_all


def test_an_invalid_escaleignore_line_is_named(tmp_path: Path) -> None:
    (tmp_path / IGNORE_FILE).write_text("ok/\n\n!\n")
    with pytest.raises(IgnoreFileError, match=r"\.escaleignore line 3: invalid pattern '!'"):
        with_ignore(NO_FILTERS, tmp_path)


def test_scan_reports_symlinks_it_does_not_follow(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    os.symlink("../f.txt", tmp_path / "sub" / "link.txt")
    os.symlink("/", tmp_path / "root-link")
    os.symlink("f.txt", tmp_path / ".hidden-link")
    symlinks: list[str] = []
    assert set(scan(tmp_path, NO_FILTERS, symlinks=symlinks)) == {"f.txt"}
    assert sorted(symlinks) == ["root-link", "sub/link.txt"]
    excluded: list[str] = []
    scan(tmp_path, Filters([], [], [compile_pattern("*.txt")], [], []), symlinks=excluded)
    assert excluded == ["root-link"]  # a symlink the filters exclude is not reported
