"""The entry-point cache: a shortcut that is never wrong about what is installed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from escale_core import entrypoints
from escale_core.entrypoints import PluginEntry, entry_points_of

from .conftest import make_plugin_dist

GROUP = "escale"
SOURCE = "VALUE = 1\n"
HOUR_AGO = time.time() - 3600
EXTRA = {"name": "only_in_cache", "value": "x", "dist": None, "version": "0"}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding one plugin distribution, changed an hour ago (not racy),
    and a cache folder of the test's own."""
    folder = tmp_path / "site"
    make_plugin_dist(folder, "escale-one", "1.0", "escale_one", SOURCE)
    for info in folder.glob("*.dist-info"):
        os.utime(info, (HOUR_AGO, HOUR_AGO))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("ESCALE_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def cached_files(site: Path) -> list[Path]:
    return sorted((site.parent / "cache").glob("entry-points-*.json"))


def names(entries: list[PluginEntry]) -> set[str]:
    return {entry.name for entry in entries}


def test_a_scan_finds_an_installed_plugin_and_is_remembered(site: Path) -> None:
    found = entry_points_of(GROUP)
    assert "escale_one" in names(found)
    assert [e.dist for e in found if e.name == "escale_one"] == ["escale-one"]
    (cache,) = cached_files(site)
    assert "escale_one" in cache.read_text()


def test_the_remembered_answer_is_used_while_nothing_on_the_path_changed(site: Path) -> None:
    entry_points_of(GROUP)
    (cache,) = cached_files(site)
    document = json.loads(cache.read_text())
    (answer,) = document["answers"].values()
    answer.append(EXTRA)
    cache.write_text(json.dumps(document))
    assert "only_in_cache" in names(entry_points_of(GROUP))


def test_other_files_changing_beside_the_distributions_do_not_matter(site: Path) -> None:
    entry_points_of(GROUP)
    (cache,) = cached_files(site)
    document = json.loads(cache.read_text())
    (answer,) = document["answers"].values()
    answer.append(EXTRA)
    cache.write_text(json.dumps(document))
    (site / "notes.txt").write_text("the current folder of python -m changes all the time")
    assert "only_in_cache" in names(entry_points_of(GROUP))


def test_reinstalling_a_plugin_with_new_entry_points_changes_the_answer(site: Path) -> None:
    entry_points_of(GROUP)
    (info,) = site.glob("escale_one-*.dist-info")
    (info / "entry_points.txt").write_text("[escale]\nrenamed = escale_one\n")
    os.utime(info)  # pip writes a new folder: a new time
    assert "renamed" in names(entry_points_of(GROUP))


def test_answers_for_a_few_search_paths_are_kept_side_by_side(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_points_of(GROUP)
    monkeypatch.syspath_prepend(str(tmp_path))  # as python -m puts the current folder first
    entry_points_of(GROUP)
    (cache,) = cached_files(site)
    assert len(json.loads(cache.read_text())["answers"]) == 2


def test_installing_a_plugin_changes_the_answer_at_the_next_start(site: Path) -> None:
    entry_points_of(GROUP)
    make_plugin_dist(site, "escale-two", "2.0", "escale_two", SOURCE)
    found = entry_points_of(GROUP)
    assert {"escale_one", "escale_two"} <= names(found)


def test_removing_a_plugin_changes_the_answer_at_the_next_start(site: Path) -> None:
    entry_points_of(GROUP)
    for info in site.glob("escale_one-*.dist-info"):
        for item in info.iterdir():
            item.unlink()
        info.rmdir()
    assert "escale_one" not in names(entry_points_of(GROUP))


def test_a_folder_changed_a_moment_ago_is_scanned_but_not_remembered(
    site: Path,
) -> None:
    for info in site.glob("*.dist-info"):
        os.utime(info)  # now: a second change may come within the same timestamp tick
    assert "escale_one" in names(entry_points_of(GROUP))
    assert cached_files(site) == []


@pytest.mark.parametrize(
    "content", [b"", b"{not json", b'{"answers": 1}', b'{"answers": {"k": [1]}}', b"[]", b"\xff"]
)
def test_a_corrupt_cache_file_means_a_scan(site: Path, content: bytes) -> None:
    entry_points_of(GROUP)
    (cache,) = cached_files(site)
    cache.write_bytes(content)
    assert "escale_one" in names(entry_points_of(GROUP))


def test_an_unwritable_cache_folder_means_no_cache_and_no_error(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = site.parent / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("ESCALE_CACHE_DIR", str(blocker / "cache"))
    assert "escale_one" in names(entry_points_of(GROUP))
    assert "escale_one" in names(entry_points_of(GROUP))


def test_an_entry_loads_its_module_attribute() -> None:
    entry = PluginEntry("x", "escale_core.entrypoints:PluginEntry.load [extra]", None, "0")
    assert entry.load() is PluginEntry.load
    assert PluginEntry("m", "escale_core.entrypoints", None, "0").load() is entrypoints
