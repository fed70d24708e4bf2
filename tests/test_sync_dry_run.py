"""``escale sync --dry-run`` says what a round would push, pull, delete and keep as conflicts,
and changes nothing: not the relay, not the folder, not the local state."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .clients import Client, Cluster


def snapshot(base: Path) -> dict[str, str]:
    """Every file under ``base`` (relay, folders, state databases) by content and mtime, and
    every folder."""
    out = {}
    for path in sorted(base.rglob("*")):
        if path.name.endswith(".lock") or path.name == "state":
            continue  # the section's lock: held while any round runs, dry or not
        if ".cache" in path.relative_to(base).parts:
            continue  # the user's cache (installed plugins: escale_core.entrypoints), no state
        if path.is_file():
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[path.relative_to(base).as_posix()] = f"{digest} {stat.st_mtime_ns}"
        elif path.is_dir():
            out[path.relative_to(base).as_posix() + "/"] = ""
    return out


def dry(client: Client) -> dict[str, object]:
    run = client.sync("--dry-run", "--json", check=False)
    assert "Traceback" not in run.stderr, run.stderr
    report = json.loads(run.stdout)[client.section]
    assert report["dry_run"] is True
    return report  # type: ignore[no-any-return]


def test_a_dry_run_reports_every_kind_of_change_and_changes_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("kept.txt", "kept")
    a.write("gone.txt", "deleted by alice")
    a.write("both.txt", "base")
    a.sync()
    b.sync()
    os.remove(a.root / "gone.txt")
    a.write("new.txt", "new from alice")
    a.write("both.txt", "alice's edit", mtime=1_700_000_000)
    a.sync()
    b.write("both.txt", "bob's edit", mtime=1_700_000_100)
    b.write("mine.txt", "new from bob")
    before = snapshot(tmp_path)
    report = dry(b)
    assert snapshot(tmp_path) == before, "a dry run changed something"
    assert sorted(report["pushed"]) == ["both.txt", "mine.txt"]
    copy, new = sorted(report["pulled"])  # alice's edit lost: it comes as a conflict copy
    assert copy.startswith("both.sync-conflict-") and copy.endswith("-alice.txt")
    assert new == "new.txt"
    assert report["deleted_local"] == ["gone.txt"]
    assert report["conflicts"] == ["both.txt"]
    human = b.sync("--dry-run")
    assert human.stdout.startswith("shared: would push 2"), human.stdout
    assert "dry run: nothing was changed" in human.stdout
    assert snapshot(tmp_path) == before
    b.sync()  # the real round does what the dry run said
    assert (b.root / "new.txt").exists() and not (b.root / "gone.txt").exists()


def test_a_dry_run_before_the_first_sync_says_there_is_no_repository(
    cluster: Cluster, tmp_path: Path
) -> None:
    a = cluster.add("alice")
    a.write("file.txt", "x")
    before = snapshot(tmp_path)
    run = a.sync("--dry-run", check=False)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "no repository there yet" in errors[0], errors
    assert snapshot(tmp_path) == before


def test_dry_run_with_watch_is_a_usage_error(cluster: Cluster) -> None:
    run = cluster.add("alice").sync("--dry-run", "--watch", check=False)
    assert run.returncode == 2 and "--dry-run" in run.stderr
