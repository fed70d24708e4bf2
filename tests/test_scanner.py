"""The round's scan: in the background, split with a forked child, summed up by a digest."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escale_core import scanner
from escale_core.history import LocalState
from escale_core.ignore import IGNORE_FILE
from escale_core.local import TEMP_PREFIX, FileStat, Filters, scan
from escale_core.scanner import (
    BackgroundScan,
    ScanResult,
    can_split,
    part_digest,
)

NO_FILTERS = Filters([], [], [], [], [])
LINUX = sys.platform.startswith("linux")


def make_tree(root: Path, ignore: bool = True) -> None:
    """Folders over two levels (more than the split needs), odd names, and what a scan
    reports beside files: a temporary file, a symlink, an undecodable name; with ``ignore``
    an ``.escaleignore`` (else the scan keeps the very Filters object a test patched)."""
    folders, files = 40, 5
    for i in range(folders):
        folder = root / f"d{i % 7}" / f"e {i} é"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(files):
            (folder / f"f{j}.txt").write_bytes(bytes(i * j % 50))
        (folder / f"{TEMP_PREFIX}{i}").write_bytes(b"left by a killed run")
        (folder / "link").symlink_to("f0.txt")
    (root / "top.txt").write_text("top")
    if ignore:
        (root / IGNORE_FILE).write_text("*.log\n")
    (root / "skip.log").write_text("ignored")
    os.makedirs(os.fsencode(root / "d0") + b"/bad\xff", exist_ok=True)


def plain(root: Path, filters: Filters = NO_FILTERS) -> ScanResult:
    """What a scan in this process alone finds."""
    return ScanResult.walked(root, filters)


def same_findings(a: ScanResult, b: ScanResult) -> None:
    assert a.files == b.files
    assert sorted(a.temp_files) == sorted(b.temp_files)
    assert sorted(a.unnamed) == sorted(b.unnamed)
    assert sorted(a.symlinks) == sorted(b.symlinks)
    assert sorted(a.unreadable) == sorted(b.unreadable)


@pytest.mark.parametrize("split", [False, True])
def test_a_background_scan_finds_what_a_scan_finds(tmp_path: Path, split: bool) -> None:
    make_tree(tmp_path)
    filters = Filters([], [], [], [], [])
    background = BackgroundScan(tmp_path, filters, split=split)
    result = background.result()
    same_findings(result, plain(tmp_path, background.filters))
    assert "skip.log" not in result and IGNORE_FILE in result  # .escaleignore applied
    assert len(result) == 40 * 5 + 2
    assert isinstance(result["top.txt"], FileStat)


@pytest.mark.skipif(not LINUX, reason="the split forks on Linux only")
def test_a_split_scan_walks_part_of_the_tree_in_another_process(tmp_path: Path) -> None:
    make_tree(tmp_path, ignore=False)
    seen_here: list[str] = []
    filters = Filters([], [], [], [], [])

    def accepts(relpath: str) -> bool:
        seen_here.append(relpath)  # the child's calls land in the child's memory
        return True

    filters.accepts_file = accepts  # type: ignore[method-assign]
    filters.include = [object()]  # type: ignore[list-item]  # not accepts_all: filters apply
    result = BackgroundScan(tmp_path, filters, split=True).result()
    assert len(result) == 40 * 5 + 2
    assert 0 < len(seen_here) < len(result)


@pytest.mark.skipif(not LINUX, reason="the split forks on Linux only")
def test_a_failing_helper_leaves_its_folders_to_the_parent(tmp_path: Path) -> None:
    make_tree(tmp_path, ignore=False)
    parent = os.getpid()
    filters = Filters([], [], [], [], [])

    def accepts(relpath: str) -> bool:
        if os.getpid() != parent:
            raise RuntimeError("the helper breaks")
        return True

    filters.accepts_file = accepts  # type: ignore[method-assign]
    filters.include = [object()]  # type: ignore[list-item]
    result = BackgroundScan(tmp_path, filters, split=True).result()
    same_findings(result, plain(tmp_path))
    assert len(result) == 40 * 5 + 2


@pytest.mark.parametrize("split", [False, True])
def test_a_background_scan_raises_its_error_in_the_caller(tmp_path: Path, split: bool) -> None:
    make_tree(tmp_path, ignore=False)
    filters = Filters([], [], [], [], [])

    def broken(relpath: str) -> bool:
        raise RuntimeError("filter failed")

    filters.accepts_file = broken  # type: ignore[method-assign]
    filters.include = [object()]  # type: ignore[list-item]  # not accepts_all: filters apply
    with pytest.raises(RuntimeError, match="filter failed"):
        BackgroundScan(tmp_path, filters, split=split).result()


@pytest.mark.skipif(not LINUX, reason="the split forks on Linux only")
def test_the_helper_runs_none_of_the_parents_exit_code(tmp_path: Path) -> None:
    make_tree(tmp_path)
    script = (
        "import atexit, sys\n"
        "from pathlib import Path\n"
        "from escale_core.local import Filters\n"
        "from escale_core.scanner import BackgroundScan\n"
        "print('start', flush=True)\n"
        "sys.stdout.write('buffered ')\n"
        "atexit.register(lambda: print('exit'))\n"
        f"root = Path({str(tmp_path)!r})\n"
        "found = BackgroundScan(root, Filters([], [], [], [], []), split=True)\n"
        "print(len(found.result()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == ["start", f"buffered {40 * 5 + 2}", "exit", ""]


def test_a_process_with_threads_does_not_split() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not can_split()
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("split", [False, True])
def test_the_digest_is_the_same_for_an_unchanged_tree_and_differs_after_any_change(
    tmp_path: Path, split: bool
) -> None:
    make_tree(tmp_path)

    def digest() -> bytes:
        found = BackgroundScan(tmp_path, NO_FILTERS, split=split).result().digest
        assert found is not None
        return found

    first = digest()
    assert digest() == first
    target = tmp_path / "d3" / "e 10 é" / "f2.txt"
    stat = target.stat()
    changes: list[Callable[[], object]] = [
        lambda: os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1)),  # mtime
        lambda: target.write_bytes(target.read_bytes() + b"x"),  # size
        lambda: (tmp_path / "d3" / "new").write_bytes(b""),  # a new file
        lambda: (tmp_path / "top.txt").unlink(),  # a deletion
    ]
    seen = {first}
    for change in changes:
        change()
        now = digest()
        assert now not in seen
        seen.add(now)


def test_a_file_replaced_by_one_with_the_same_size_and_time_changes_the_digest(
    tmp_path: Path,
) -> None:
    (tmp_path / "f").write_bytes(b"one")
    before = scan(tmp_path, NO_FILTERS)
    info = (tmp_path / "f").stat()
    (tmp_path / "g").write_bytes(b"two")
    os.utime(tmp_path / "g", ns=(info.st_atime_ns, info.st_mtime_ns))
    os.replace(tmp_path / "g", tmp_path / "f")  # another inode
    after = scan(tmp_path, NO_FILTERS)
    assert after["f"][:2] == before["f"][:2]
    assert part_digest(after) != part_digest(before)


def test_a_digest_tells_paths_apart_from_their_numbers() -> None:
    one = {"a": FileStat(1, 2, 3), "b": FileStat(4, 5, 6)}
    other = {"a": FileStat(1, 2, 3)}
    assert part_digest(one) != part_digest(other)
    assert part_digest({"a\0b": FileStat(1, 2, 3)}) != part_digest({"a": FileStat(1, 2, 3)})


def test_numbers_that_fit_no_64_bit_array_give_no_digest_and_the_full_comparison() -> None:
    assert ScanResult.of({"a": FileStat(1, 2, 1 << 64)}).digest is None
    assert part_digest({"a": FileStat(1, -1, 1 << 63)}) is None  # signed and unsigned both
    assert part_digest({"a": FileStat(1, -(10**18), 3)}) is not None  # a time before 1970
    big_inode = part_digest({"a": FileStat(1, 2, (1 << 63) + 5)})  # some FUSE and NFS mounts
    assert big_inode is not None and big_inode != part_digest({"a": FileStat(1, 2, 5)})


@pytest.mark.parametrize("stat", [FileStat(1, -(10**18), 3), FileStat(7, 2, (1 << 64) - 1)])
def test_a_part_sent_by_a_helper_decodes_to_the_files_it_found(stat: FileStat) -> None:
    found = {"a": stat, "d/é": FileStat(0, 0, 0)}
    keys, numbers = scanner._encode(found)
    assert numbers is not None
    result = ScanResult()
    result.add_encoded(len(found), keys, numbers, scanner._digest_of(len(found), keys, numbers))
    assert result.files == found and result.digest == ScanResult.of(found).digest


@pytest.mark.skipif(not LINUX, reason="the split forks on Linux only")
def test_a_split_scan_works_when_the_parent_process_ignores_sigchld(tmp_path: Path) -> None:
    """A process started by one that ignores SIGCHLD cannot wait for its children (the
    kernel reaps them): the scan must still find everything."""
    make_tree(tmp_path)
    script = (
        "import signal\n"
        "from pathlib import Path\n"
        "from escale_core.local import Filters\n"
        "from escale_core.scanner import BackgroundScan\n"
        "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
        f"root = Path({str(tmp_path)!r})\n"
        "print(len(BackgroundScan(root, Filters([], [], [], [], []), split=True).result()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(40 * 5 + 2)


@pytest.mark.parametrize("split", [False, True])
def test_an_error_of_the_first_levels_is_raised_by_result_not_by_the_start(
    tmp_path: Path, split: bool
) -> None:
    """The round maps a scan's errors where it takes the result (local folder errors)."""
    (tmp_path / "f").write_bytes(b"x")
    filters = Filters([], [], [], [], [])

    def broken(relpath: str) -> bool:
        raise OSError(5, "Input/output error")

    filters.accepts_file = broken  # type: ignore[method-assign]
    filters.include = [object()]  # type: ignore[list-item]  # not accepts_all: filters apply
    background = BackgroundScan(tmp_path, filters, split=split)  # does not raise
    with pytest.raises(OSError, match="Input/output error"):
        background.result()


def synced_state(tmp_path: Path, found: dict[str, FileStat]) -> LocalState:
    """A state whose files are the scan's, all settled, as a round leaves it."""
    from escale_core.history import FileRecord

    state = LocalState("s", tmp_path / "state")
    for path, info in found.items():
        state.set(path, FileRecord(*info, "c", "c", "A", "{}"))
    return state


@pytest.mark.parametrize("split", [False, True])
def test_an_unchanged_scan_is_recognised_by_its_digest_without_decoding(
    tmp_path: Path, split: bool
) -> None:
    root = tmp_path / "A"
    make_tree(root)
    first = BackgroundScan(root, NO_FILTERS, split=split).result()
    state = synced_state(tmp_path, first.files)
    state.save_snapshot(first)
    state.close()
    again = LocalState("s", tmp_path / "state")
    scanned = BackgroundScan(root, NO_FILTERS, split=split).result()
    assert again.unchanged(scanned)
    assert bool(scanned._encoded) == split  # the helper's part was never decoded
    (root / "top.txt").write_text("changed!")
    assert not again.unchanged(BackgroundScan(root, NO_FILTERS, split=split).result())


def test_a_scan_found_equal_to_the_snapshot_stores_its_digest(tmp_path: Path) -> None:
    root = tmp_path / "A"
    make_tree(root)
    state = synced_state(tmp_path, BackgroundScan(root, NO_FILTERS).result().files)
    state.save_snapshot()  # no scan given: the snapshot alone
    assert state._snapshot_data("scan-digest-1") is None
    scanned = BackgroundScan(root, NO_FILTERS).result()
    assert state.unchanged(scanned)  # compared in full, then its digest kept
    assert state._snapshot_data("scan-digest-1") == scanned.digest


def test_a_changed_file_row_drops_the_digest_with_the_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "A"
    make_tree(root)
    scanned = BackgroundScan(root, NO_FILTERS).result()
    state = synced_state(tmp_path, scanned.files)
    state.save_snapshot(scanned)
    assert state.unchanged(scanned)
    record = state.files["top.txt"]
    state.set("top.txt", record._replace(synced="other"))  # e.g. a pull replaced it
    state.commit()
    assert not state.unchanged(scanned)  # the same scan no longer proves anything


def test_a_scan_that_differs_from_the_records_stores_no_digest(tmp_path: Path) -> None:
    root = tmp_path / "A"
    make_tree(root)
    scanned = BackgroundScan(root, NO_FILTERS).result()
    records = dict(scanned.files)
    records["top.txt"] = records["top.txt"]._replace(size=99)  # changed after the scan
    state = synced_state(tmp_path, records)
    state.save_snapshot(scanned)
    assert not state.unchanged(scanned)


NAMES = st.sampled_from(["a", "b", "é", "x y", ".hid", f"{TEMP_PREFIX}t", "z.log", "日本"])
#: A tree: each path is a chain of names; the last is a file, a folder or a symlink.
TREES = st.lists(
    st.tuples(st.lists(NAMES, min_size=1, max_size=4), st.sampled_from(["file", "dir", "link"])),
    max_size=40,
)


@pytest.mark.skipif(not LINUX, reason="the split forks on Linux only")
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=TREES, until=st.integers(min_value=2, max_value=6))
def test_a_split_scan_of_any_tree_finds_what_a_scan_finds(
    tmp_path_factory: pytest.TempPathFactory, tree: list[tuple[list[str], str]], until: int
) -> None:
    root = tmp_path_factory.mktemp("tree")
    for names, kind in tree:
        path = root.joinpath(*names)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "file":
                path.write_bytes(b"x" * len(names))
            elif kind == "dir":
                path.mkdir(exist_ok=True)
            else:
                path.symlink_to("elsewhere")
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue  # a name taken by another kind: the tree keeps the first
    expected = plain(root)
    saved = scanner.SPLIT_FOLDERS
    scanner.SPLIT_FOLDERS = until  # split small trees too
    try:
        found = BackgroundScan(root, NO_FILTERS, split=True).result()
        again = BackgroundScan(root, NO_FILTERS, split=True).result()
    finally:
        scanner.SPLIT_FOLDERS = saved
    same_findings(found, expected)
    assert found.digest == again.digest  # an unchanged tree, the same digest
