"""Tombstones: kept (and sent in full updates) while some known client may not have seen the
deletion, forgotten once every known client has (bounded state). Rounds run in-process on
real folders and a real ``file://`` relay."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from escale_core.address import parse_relay_url
from escale_core.engine import Engine, SyncOptions
from escale_core.history import LocalState
from escale_core.local import Filters
from escale_core.plugins import get_plugins
from escale_core.relay import open_relay
from escale_core.repository import Repository, open_repository

PASSPHRASE = b"tombstones"


@dataclass
class Side:
    """One client: its folder and state folder."""

    name: str
    root: Path
    state_dir: Path

    @contextmanager
    def state(self) -> Iterator[LocalState]:
        state = LocalState("s", self.state_dir)
        try:
            yield state
        finally:
            state.close()


def make_repo(tmp_path: Path) -> Repository:
    plugins = get_plugins()
    relay = open_relay(parse_relay_url(f"file://{tmp_path / 'relay'}"), plugins.relays)
    return open_repository(
        relay, plugins.ciphers, PASSPHRASE, create_cipher="aes-256-gcm", create_checksum="sha256"
    )


def sync(repo: Repository, side: Side, tombstone_age: float = 0) -> None:
    options = SyncOptions(
        root=side.root,
        client=side.name,
        mode="shared",
        filters=Filters([], [], [], [], []),
        pullers=2,
        tombstone_age=tombstone_age,
    )
    with side.state() as state:
        report = Engine(repo, state, options, get_plugins().checksums).run_round()
    assert not report.errors, report.errors


def tombstones(side: Side) -> set[str]:
    with side.state() as state:
        return set(state.tombstones)


def clients(tmp_path: Path, *names: str) -> list[Side]:
    sides = []
    for name in names:
        side = Side(name, tmp_path / name / "folder", tmp_path / name / "state")
        side.root.mkdir(parents=True)
        sides.append(side)
    return sides


def test_a_tombstone_is_kept_until_every_known_client_has_seen_the_deletion(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    ann, ben, cat = clients(tmp_path, "ann", "ben", "cat")
    (ann.root / "f.txt").write_text("to be deleted")
    for side in (ann, ben, cat):
        sync(repo, side)
    (ann.root / "f.txt").unlink()
    sync(repo, ann)
    sync(repo, ben)
    sync(repo, ann)
    assert tombstones(ann) == {"f.txt"}, "cat has not seen the deletion yet"
    assert (cat.root / "f.txt").exists()
    sync(repo, cat)
    assert not (cat.root / "f.txt").exists()
    for side in (ann, ben, cat):
        sync(repo, side)
    assert tombstones(ann) == tombstones(ben) == tombstones(cat) == set()


def test_a_tombstone_younger_than_the_age_limit_is_kept_even_when_everyone_saw_it(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    ann, ben = clients(tmp_path, "ann", "ben")
    (ann.root / "f.txt").write_text("to be deleted")
    for side in (ann, ben):
        sync(repo, side, tombstone_age=3600)
    (ann.root / "f.txt").unlink()
    for side in (ann, ben, ann, ben):
        sync(repo, side, tombstone_age=3600)
    assert not (ben.root / "f.txt").exists()
    assert tombstones(ann) == tombstones(ben) == {"f.txt"}
