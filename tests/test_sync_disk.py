"""The local disk refuses: full, or read-only. Each is one line naming the folder and what to
do, exit status 1, never an internal error; nothing is replaced by a partial file, and the
next round, once the cause is fixed, completes.

The folders are small tmpfs mounts, so these tests need root (as in CI)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .clients import Cluster, tree


def _mount(folder: Path, *options: str) -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)], check=True
    )


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Folders to unmount at the end."""
    mounted: list[Path] = []
    yield mounted
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(autouse=True)
def _can_mount(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True
    )
    if run.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {run.stderr.decode().strip()}")
    subprocess.run(["umount", str(probe)], check=True)


def one_error(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    return errors[0]


def test_a_full_disk_is_one_line_and_the_next_round_completes(
    cluster: Cluster, mounts: list[Path]
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("big.bin", b"x" * 3_000_000)
    a.write("small.txt", "small")
    a.sync()
    _mount(b.root, "size=1m")
    mounts.append(b.root)
    line = one_error(b.sync(check=False))
    assert str(b.root) in line and "no space left" in line and "free some space" in line, line
    assert not [p for p in tree(b.root) if p != "small.txt"], "a partial file was left"
    subprocess.run(["mount", "-o", "remount,size=10m", str(b.root)], check=True)
    b.sync()
    assert tree(b.root) == tree(a.root)


def test_a_read_only_folder_is_one_line_and_nothing_is_lost(
    cluster: Cluster, mounts: list[Path]
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    _mount(b.root, "size=10m")
    mounts.append(b.root)
    a.write("first.txt", "first")
    a.sync()
    b.sync()
    subprocess.run(["mount", "-o", "remount,ro", str(b.root)], check=True)
    a.write("second.txt", "second")
    a.sync()
    line = one_error(b.sync(check=False))
    assert str(b.root) in line and "read-only" in line and "mode" in line, line
    subprocess.run(["mount", "-o", "remount,rw", str(b.root)], check=True)
    b.sync()
    assert tree(b.root) == tree(a.root)


def test_a_read_only_relay_is_one_line_naming_the_section_and_the_relay(
    cluster: Cluster, mounts: list[Path]
) -> None:
    relay = Path(cluster.relay.removeprefix("file://"))
    relay.mkdir(parents=True, exist_ok=True)
    _mount(relay, "size=10m")
    mounts.append(relay)
    a = cluster.add("alice")
    a.write("first.txt", "first")
    a.sync()
    subprocess.run(["mount", "-o", "remount,ro", str(relay)], check=True)
    a.write("second.txt", "second")
    line = one_error(a.sync(check=False))
    assert line.startswith(f"escale: error: [{a.section}] relay file://"), line
    assert "read-only" in line and "remount it read-write" in line, line


def test_a_state_folder_that_cannot_be_written_is_one_line(
    cluster: Cluster, mounts: list[Path], tmp_path: Path
) -> None:
    a = cluster.add("alice")
    state = tmp_path / "locked-state"
    state.mkdir()
    _mount(state, "size=64k", "ro")
    mounts.append(state)
    a.config.write_text(
        a.config.read_text().replace(
            a.config.read_text().splitlines()[0], f'state_dir = "{state / "escale"}"'
        )
    )
    line = one_error(a.sync(check=False))
    assert f"state folder {state / 'escale'}" in line and "state_dir" in line, line
