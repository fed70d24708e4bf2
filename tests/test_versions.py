"""Previous versions (DESIGN §11): kept, listed, cleaned by each policy, restored; the CLI."""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path
from typing import Callable

import pytest

from escale_core.config import load_config
from escale_core.errors import EscaleError
from escale_core.versions import (
    VERSIONS_DIR,
    StoredVersion,
    VersionPolicy,
    clean_versions,
    keep_version,
    list_versions,
    restore_version,
)

from .conftest import RunEscale

T0 = 1_000_000_000.0  # 2001-09-09 01:46:40 UTC
STAMP0 = "20010909-014640"
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
NOW = 2_000_000_000.0
TRASH = VersionPolicy()


def _write(root: Path, relpath: str, text: str) -> Path:
    """Write a file as the sync engine does: a new file renamed over the old one (never into a
    file a linked version shares)."""
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".new")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)
    return path


def _keep(root: Path, relpath: str, text: str, when: float) -> Path:
    """Write ``relpath`` with ``text`` and keep it as a version kept at ``when``."""
    _write(root, relpath, text)
    kept = keep_version(root, relpath, TRASH, move=False, now=when)
    assert kept is not None
    return Path(kept)


def _ages(root: Path, relpath: str) -> list[float]:
    """Ages (seconds before NOW) of the versions of ``relpath``, oldest first."""
    return [NOW - v.time for v in list_versions(root, relpath) if v.relpath == relpath]


# naming


@pytest.mark.parametrize(
    ("relpath", "name"),
    [
        ("docs/report.txt", f"docs/report~{STAMP0}.txt"),
        ("Makefile", f"Makefile~{STAMP0}"),
        ("archive.tar.gz", f"archive.tar~{STAMP0}.gz"),
        (".profile", f".profile~{STAMP0}"),
        ("a/b/c~1.txt", f"a/b/c~1~{STAMP0}.txt"),
    ],
)
def test_version_name_is_the_path_with_a_utc_stamp_before_the_last_extension(
    tmp_path: Path, relpath: str, name: str
) -> None:
    kept = _keep(tmp_path, relpath, "x", T0)
    assert kept == tmp_path / VERSIONS_DIR / name
    assert [(v.relpath, v.time) for v in list_versions(tmp_path)] == [(relpath, T0)]


def test_a_taken_version_name_gets_a_number(tmp_path: Path) -> None:
    names = [_keep(tmp_path, "a.txt", f"v{i}", T0).name for i in range(3)]
    assert names == [f"a~{STAMP0}.txt", f"a~{STAMP0}-1.txt", f"a~{STAMP0}-2.txt"]
    assert [v.path.read_text() for v in list_versions(tmp_path)] == ["v0", "v1", "v2"]


def test_names_that_are_not_versions_are_ignored(tmp_path: Path) -> None:
    _keep(tmp_path, "a.txt", "x", T0)
    folder = tmp_path / VERSIONS_DIR
    for name in ("notes.txt", "a~2001.txt", "a~20011399-000000.txt", "a.txt~20010909-014640"):
        (folder / name).write_text("?")
    assert [v.path.name for v in list_versions(tmp_path)] == [f"a~{STAMP0}.txt"]


@pytest.mark.parametrize("relpath", ["../x", "/etc/passwd", "a//b", "./a", "", ".escale/x"])
def test_a_path_that_could_leave_the_folder_is_refused(tmp_path: Path, relpath: str) -> None:
    with pytest.raises(EscaleError, match="invalid path"):
        keep_version(tmp_path, relpath, TRASH, move=False)


# keeping


def test_a_linked_version_shares_the_inode_and_survives_a_replace_of_the_file(
    tmp_path: Path,
) -> None:
    original = _write(tmp_path, "a.txt", "old")
    kept = Path(keep_version(tmp_path, "a.txt", TRASH, move=False, now=T0) or "")
    assert kept.is_absolute() and original.read_text() == "old"
    assert os.stat(kept).st_ino == os.stat(original).st_ino
    new = _write(tmp_path, "new.tmp", "new content")
    os.replace(new, original)
    assert original.read_text() == "new content" and kept.read_text() == "old"


def test_a_moved_version_takes_the_file_away(tmp_path: Path) -> None:
    original = _write(tmp_path, "sub/a.txt", "gone")
    inode = os.stat(original).st_ino
    kept = Path(keep_version(tmp_path, "sub/a.txt", TRASH, move=True, now=T0) or "")
    assert not original.exists()
    assert kept.read_text() == "gone" and os.stat(kept).st_ino == inode


def test_keeping_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        keep_version(tmp_path, "nope.txt", TRASH, move=True)
    with pytest.raises(FileNotFoundError):
        keep_version(tmp_path, "no/folder.txt", TRASH, move=False)


def test_policy_none_keeps_nothing(tmp_path: Path) -> None:
    original = _write(tmp_path, "a.txt", "x")
    assert keep_version(tmp_path, "a.txt", VersionPolicy("none"), move=True) is None
    assert original.read_text() == "x" and not (tmp_path / ".escale").exists()


@pytest.mark.parametrize(
    "planted", [".escale", ".escale/versions", ".escale/versions/sub"], ids=lambda p: p
)
def test_a_symlink_on_the_way_to_the_versions_folder_is_refused(
    tmp_path: Path, planted: str
) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    elsewhere.mkdir()
    original = _write(root, "sub/a.txt", "x")
    link = root / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(EscaleError, match=re.escape(f"{link} is a symbolic link")):
        keep_version(root, "sub/a.txt", TRASH, move=True)
    assert original.read_text() == "x" and list(elsewhere.iterdir()) == []


def test_a_file_on_the_way_to_the_versions_folder_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "a.txt", "x")
    (tmp_path / ".escale").write_text("not a folder")
    with pytest.raises(EscaleError, match="is not a folder"):
        keep_version(tmp_path, "a.txt", TRASH, move=False)


def test_listing_and_cleaning_refuse_a_symlinked_versions_folder(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    _keep(elsewhere, "a.txt", "x", T0)  # elsewhere/.escale/versions/a~...txt
    root.mkdir()
    (root / ".escale").symlink_to(elsewhere / ".escale", target_is_directory=True)
    with pytest.raises(EscaleError, match="symbolic link"):
        list_versions(root)
    with pytest.raises(EscaleError, match="symbolic link"):
        clean_versions(root, VersionPolicy("simple", keep=1, max_age=1.0), now=NOW)
    assert len(list_versions(elsewhere)) == 1


# listing


def test_listing_with_a_path_gives_that_file_or_the_files_below_that_folder(
    tmp_path: Path,
) -> None:
    for relpath in ("a.txt", "docs/b.txt", "docs/sub/c.txt", "docs2/d.txt", "x"):
        _keep(tmp_path, relpath, "", T0)
    # a file named "docs" cannot sit beside the folder "docs": plant its version by hand
    (tmp_path / VERSIONS_DIR / f"docs~{STAMP0}").write_text("")
    _keep(tmp_path, "docs/b.txt", "later", T0 + 5)
    everything = [(v.relpath, v.time) for v in list_versions(tmp_path)]
    assert everything == [
        ("a.txt", T0),
        ("docs", T0),
        ("docs/b.txt", T0),
        ("docs/b.txt", T0 + 5),
        ("docs/sub/c.txt", T0),
        ("docs2/d.txt", T0),
        ("x", T0),
    ]
    assert [v.relpath for v in list_versions(tmp_path, "docs")] == [
        "docs",
        "docs/b.txt",
        "docs/b.txt",
        "docs/sub/c.txt",
    ]
    assert [v.relpath for v in list_versions(tmp_path, "docs/")] == [
        v.relpath for v in list_versions(tmp_path, "docs")
    ]
    only = list_versions(tmp_path, "docs/b.txt")
    assert [(v.time, v.path.read_text(), v.size) for v in only] == [
        (T0, "", 0),
        (T0 + 5, "later", 5),
    ]
    assert list_versions(tmp_path, "nothing/here") == []


def test_listing_without_a_versions_folder_is_empty(tmp_path: Path) -> None:
    assert list_versions(tmp_path) == []
    assert list_versions(tmp_path / "missing") == []


# cleaning


def test_trash_keeps_the_newest_version_of_each_file_for_30_days(tmp_path: Path) -> None:
    for age in (40 * DAY, 10 * DAY, 1 * DAY):
        _keep(tmp_path, "a.txt", str(age), NOW - age)
    _keep(tmp_path, "sub/b.txt", "old", NOW - 31 * DAY)
    assert clean_versions(tmp_path, TRASH, now=NOW) == 3
    assert [(v.relpath, NOW - v.time) for v in list_versions(tmp_path)] == [("a.txt", DAY)]
    assert not (tmp_path / VERSIONS_DIR / "sub").exists()  # left empty: removed
    assert (tmp_path / VERSIONS_DIR).is_dir()


def test_trash_with_a_max_age_drops_the_newest_version_once_older(tmp_path: Path) -> None:
    _keep(tmp_path, "a.txt", "x", NOW - 2 * DAY)
    assert clean_versions(tmp_path, VersionPolicy("trash", max_age=3 * DAY), now=NOW) == 0
    assert clean_versions(tmp_path, VersionPolicy("trash", max_age=DAY), now=NOW) == 1
    assert list_versions(tmp_path) == []


def test_simple_keeps_the_n_newest_versions_and_no_age_limit_unless_set(tmp_path: Path) -> None:
    for age in (1000 * DAY, 500 * DAY, 400 * DAY, 2 * DAY):
        _keep(tmp_path, "a.txt", "x", NOW - age)
    _keep(tmp_path, "b.txt", "x", NOW - 900 * DAY)
    assert clean_versions(tmp_path, VersionPolicy("simple", keep=2), now=NOW) == 2
    assert _ages(tmp_path, "a.txt") == [400 * DAY, 2 * DAY]
    assert _ages(tmp_path, "b.txt") == [900 * DAY]
    limited = VersionPolicy("simple", keep=2, max_age=30 * DAY)
    assert clean_versions(tmp_path, limited, now=NOW) == 2
    assert [v.relpath for v in list_versions(tmp_path)] == ["a.txt"]


def test_staggered_keeps_the_oldest_version_of_each_interval_up_to_365_days(
    tmp_path: Path,
) -> None:
    series = {  # age → kept?
        400 * DAY: False,  # beyond the default maximum age
        300 * DAY: True,  # the oldest one left is always kept
        297 * DAY: False,  # one per week after 30 days
        293 * DAY: True,
        200 * DAY: True,
        20 * DAY: True,
        19.5 * DAY: False,  # one per day up to 30 days
        19 * DAY: True,
        10 * DAY: True,
        5 * HOUR: True,
        4.5 * HOUR: False,  # one per hour up to a day
        4 * HOUR: True,
        3.2 * HOUR: False,
        2 * HOUR: True,
        100.0: True,
        90.0: False,  # one per 30 s up to an hour
        80.0: False,
        70.0: True,
        40.0: True,
        5.0: True,
    }
    for age in series:
        _keep(tmp_path, "a.txt", f"{age}", NOW - age)
    deleted = clean_versions(tmp_path, VersionPolicy("staggered"), now=NOW)
    assert deleted == sum(not kept for kept in series.values())
    assert _ages(tmp_path, "a.txt") == [age for age, kept in series.items() if kept]


def test_staggered_drops_a_new_version_too_close_to_the_last_kept_one(tmp_path: Path) -> None:
    for age in (600.0, 590.0, 575.0, 569.0, 10.0, 0.0):
        _keep(tmp_path, "a.txt", "x", NOW - age)
    assert clean_versions(tmp_path, VersionPolicy("staggered"), now=NOW) == 3
    assert _ages(tmp_path, "a.txt") == [600.0, 569.0, 10.0]


def test_staggered_honours_a_shorter_max_age(tmp_path: Path) -> None:
    for age in (100 * DAY, 50 * DAY, DAY / 2):
        _keep(tmp_path, "a.txt", "x", NOW - age)
    policy = VersionPolicy("staggered", max_age=60 * DAY)
    assert clean_versions(tmp_path, policy, now=NOW) == 1
    assert _ages(tmp_path, "a.txt") == [50 * DAY, DAY / 2]


def test_policy_none_cleans_nothing(tmp_path: Path) -> None:
    _keep(tmp_path, "a.txt", "x", NOW - 1000 * DAY)
    assert clean_versions(tmp_path, VersionPolicy("none"), now=NOW) == 0
    assert len(list_versions(tmp_path)) == 1


def test_cleaning_without_a_versions_folder_does_nothing(tmp_path: Path) -> None:
    assert clean_versions(tmp_path, TRASH) == 0
    assert not (tmp_path / ".escale").exists()


# restoring


def test_restore_brings_back_the_newest_version_with_its_mtime(tmp_path: Path) -> None:
    _keep(tmp_path, "sub/a.txt", "v1", T0)
    newest = _keep(tmp_path, "sub/a.txt", "v2", T0 + 60)
    os.utime(newest, (T0, T0 + 30))
    (tmp_path / "sub/a.txt").unlink()
    (tmp_path / "sub").rmdir()
    restored = restore_version(tmp_path, "sub/a.txt")
    assert restored == StoredVersion("sub/a.txt", T0 + 60, newest, 2)
    target = tmp_path / "sub/a.txt"
    assert target.read_text() == "v2" and os.stat(target).st_mtime == T0 + 30
    assert os.stat(target).st_ino != os.stat(newest).st_ino  # a copy: the version stays intact
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.txt"]  # no temp file left


def test_restore_at_a_time_takes_the_newest_version_kept_by_then(tmp_path: Path) -> None:
    _keep(tmp_path, "a.txt", "v1", T0)
    _keep(tmp_path, "a.txt", "v2", T0 + 60)
    (tmp_path / "a.txt").unlink()
    assert restore_version(tmp_path, "a.txt", at=T0 + 59).time == T0
    assert (tmp_path / "a.txt").read_text() == "v1"
    assert restore_version(tmp_path, "a.txt", at=T0 + 60).time == T0 + 60


def test_restore_keeps_the_current_file_as_a_version_first(tmp_path: Path) -> None:
    _keep(tmp_path, "a.txt", "v1", T0)
    (tmp_path / "a.txt").unlink()
    _write(tmp_path, "a.txt", "current")
    restore_version(tmp_path, "a.txt", now=T0 + 100)
    assert (tmp_path / "a.txt").read_text() == "v1"
    versions = list_versions(tmp_path, "a.txt")
    assert [(v.time, v.path.read_text()) for v in versions] == [(T0, "v1"), (T0 + 100, "current")]


def test_restore_keeps_the_current_file_even_with_policy_none(tmp_path: Path) -> None:
    _keep(tmp_path, "a.txt", "v1", T0)
    (tmp_path / "a.txt").unlink()
    _write(tmp_path, "a.txt", "mine")
    restore_version(tmp_path, "a.txt", policy=VersionPolicy("none"), now=T0 + 100)
    assert (tmp_path / "a.txt").read_text() == "v1"
    assert [v.path.read_text() for v in list_versions(tmp_path, "a.txt")] == ["v1", "mine"]


def test_restore_without_a_version_names_the_path_and_the_list_command(tmp_path: Path) -> None:
    _keep(tmp_path, "a.txt", "v1", T0)
    with pytest.raises(EscaleError) as missing:
        restore_version(tmp_path, "b.txt")
    assert "no previous version of b.txt" in str(missing.value)
    assert "escale versions list SECTION" in str(missing.value)
    assert "\n" not in str(missing.value)
    with pytest.raises(EscaleError, match=r"no previous version of a\.txt kept at or before"):
        restore_version(tmp_path, "a.txt", at=T0 - 1)
    assert (tmp_path / "a.txt").read_text() == "v1"


# configuration


CONFIG = """
[photos]
path = "{tmp}/A"
relay = "{tmp}/relay"
encryption = "plain"
"""


def test_versions_keys_default_to_trash_and_make_a_policy(
    tmp_path: Path, write_config: Callable[[str], Path]
) -> None:
    section = load_config(write_config(CONFIG)).section("photos")
    assert section.versions_policy == VersionPolicy("trash", 5, None)
    text = CONFIG + 'versions = "Simple"\nversions_keep = 3\n"versions max age" = "2w"\n'
    section = load_config(write_config(text)).section("photos")
    assert section.versions_policy == VersionPolicy("simple", 3, 14 * DAY)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('versions = "sometimes"', "[photos] versions: expected one of none, simple, staggered"),
        ("versions_keep = 0", "[photos] versions_keep: expected an integer >= 1"),
        ('versions_max_age = "soon"', "[photos] versions_max_age: expected a positive duration"),
        ("versions_max_age = true", "[photos] versions_max_age: expected a duration"),
    ],
)
def test_a_bad_versions_key_is_a_one_line_config_error(
    escale: RunEscale, write_config: Callable[[str], Path], line: str, expected: str
) -> None:
    config = write_config(CONFIG + line + "\n")
    run = escale("-c", str(config), "versions", "list", "photos")
    assert run.returncode == 2
    assert len(run.error_lines) == 1 and expected in run.error_lines[0]
    assert str(config) in run.error_lines[0]


# command line


@pytest.fixture
def photos(tmp_path: Path, write_config: Callable[[str], Path]) -> tuple[Path, Path]:
    """A configuration with section [photos] (folder A) holding versions of two files."""
    root = tmp_path / "A"
    _keep(root, "docs/b.txt", "b1", T0)
    _keep(root, "docs/b.txt", "b2 longer", T0 + 3600)
    _keep(root, "a.txt", "a1", T0)
    return write_config(CONFIG), root


def _local(when: float) -> str:
    return datetime.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S")


def test_cli_versions_list_prints_path_local_time_and_size(
    escale: RunEscale, photos: tuple[Path, Path]
) -> None:
    config, _ = photos
    run = escale("-c", str(config), "versions", "list", "photos")
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()]
    assert rows == [
        ["PATH", "TIME", "SIZE"],
        ["a.txt", *_local(T0).split(), "2", "B"],
        ["docs/b.txt", *_local(T0).split(), "2", "B"],
        ["docs/b.txt", *_local(T0 + 3600).split(), "9", "B"],
    ]
    only = escale("-c", str(config), "versions", "list", "photos", "docs")
    assert [line.split()[0] for line in only.stdout.splitlines()] == ["PATH", *["docs/b.txt"] * 2]
    none = escale("-c", str(config), "versions", "list", "photos", "c.txt")
    assert none.returncode == 0 and "no previous versions of c.txt" in none.stdout


def test_cli_versions_list_json_gives_one_object_per_version(
    escale: RunEscale, photos: tuple[Path, Path]
) -> None:
    config, root = photos
    run = escale("-c", str(config), "versions", "list", "photos", str(root / "docs"), "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [
        {
            "path": "docs/b.txt",
            "time": when,
            "local_time": datetime.datetime.fromtimestamp(when).isoformat(),
            "size": size,
            "file": str(root / VERSIONS_DIR / "docs" / name),
        }
        for when, size, name in [
            (T0, 2, f"b~{STAMP0}.txt"),
            (T0 + 3600, 9, "b~20010909-024640.txt"),
        ]
    ]


def test_cli_versions_restore_at_an_iso_time_or_unix_seconds(
    escale: RunEscale, photos: tuple[Path, Path]
) -> None:
    config, root = photos
    target = root / "docs/b.txt"
    target.unlink()
    at = datetime.datetime.fromtimestamp(T0 + 60).strftime("%Y-%m-%dT%H:%M")
    run = escale("-c", str(config), "versions", "restore", "photos", "docs/b.txt", "--at", at)
    assert run.returncode == 0, run.stderr
    assert (
        run.stdout.strip() == f"[photos] restored docs/b.txt from the version of {_local(T0)} (2 B)"
    )
    assert target.read_text() == "b1"
    run = escale("-c", str(config), "versions", "restore", "photos", "docs/b.txt", "--at", "2e9")
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip().endswith("; the file it replaced is kept as a version")
    assert target.read_text() == "b2 longer"
    assert [v.path.read_text() for v in list_versions(root, "docs/b.txt")][-1] == "b1"


def test_cli_versions_restore_errors_are_one_line(
    escale: RunEscale, photos: tuple[Path, Path]
) -> None:
    config, _ = photos
    cases = [
        (["photos", "c.txt"], 1, "escale: error: no previous version of c.txt in "),
        (["photos", "../c.txt"], 2, "escale: error: ../c.txt is not inside [photos] "),
        (["photos", "a.txt", "--at", "yesterday"], 2, "escale: error: --at: cannot read"),
        (["other", "a.txt"], 2, "escale: error: "),
    ]
    for args, status, start in cases:
        run = escale("-c", str(config), "versions", "restore", *args)
        assert run.returncode == status, run.stderr
        assert len(run.error_lines) == 1 and run.error_lines[0].startswith(start), run.stderr


def test_versions_commands_are_listed_and_documented(escale: RunEscale) -> None:
    assert "versions" in escale("--help").stdout
    listed = escale("versions", "--help").stdout
    assert "list" in listed and "restore" in listed
    cli = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "escale versions list SECTION" in cli and "escale versions restore SECTION" in cli
