"""Local state: where it lives, one database per section, schema version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from escale_core.errors import StateError
from escale_core.state import SCHEMA_VERSION, open_state, schema_version, state_dir, state_file


def test_state_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ESCALE_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "escale"
    assert state_dir(tmp_path / "configured") == tmp_path / "configured"
    monkeypatch.setenv("ESCALE_STATE_DIR", str(tmp_path / "env"))
    assert state_dir(tmp_path / "configured") == tmp_path / "env"


def test_each_section_has_its_own_database(tmp_path: Path) -> None:
    names = ["photos", "Photos", "a/b", "a_b", "ünï cödé"]
    files = {state_file(n, tmp_path) for n in names}
    assert len(files) == len(names)
    assert all(f.parent == tmp_path and f.suffix == ".sqlite" for f in files)


def test_new_database_has_the_current_schema(tmp_path: Path) -> None:
    db = open_state("photos", tmp_path / "state")
    assert schema_version(db) == SCHEMA_VERSION
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "files", "access"} <= tables
    db.execute("INSERT INTO meta VALUES ('k', 'v')")
    db.close()
    again = open_state("photos", tmp_path / "state")
    assert again.execute("SELECT value FROM meta WHERE key='k'").fetchone() == ("v",)


def test_database_from_a_newer_escale_is_refused(tmp_path: Path) -> None:
    path = state_file("photos", tmp_path)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StateError, match="newer than this escale"):
        open_state("photos", tmp_path)


def test_corrupt_database_is_refused_with_a_fix(tmp_path: Path) -> None:
    state_file("photos", tmp_path).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="move it away"):
        open_state("photos", tmp_path)
