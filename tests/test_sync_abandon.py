"""A round asked to stop (``escale stop``) abandons the object it is moving: nothing
half-written stays under a real name, on either side, and the next round completes; an idle
round writes nothing to the relay, so it wakes no other client's daemon."""

from __future__ import annotations

from pathlib import Path

from escale_core.local import TEMP_PREFIX

from .clients import MIB, Cluster, big_file, round_stopped_after, same_tree


def relay_objects(cluster: Cluster) -> dict[str, tuple[int, int]]:
    """Every file of a file relay: size and modification time in ns."""
    root = Path(cluster.relay.removeprefix("file://"))
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_a_push_stopped_midway_publishes_nothing_and_the_next_round_sends_it(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice", extra='max_page_size = "1MiB"'), cluster.add("bob")
    big_file(a, "big.bin", 24)
    phases: list[str] = []
    round_stopped_after(a, 6 * MIB, phases)
    assert phases[:2] == ["scanning", "pushing"]
    b.sync()
    assert not (b.root / "big.bin").exists()  # no update names it yet
    a.sync()
    b.sync()
    assert same_tree(a.root, b.root)


def test_a_pull_stopped_midway_leaves_no_partial_file_and_the_next_round_completes(
    cluster: Cluster,
) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    big_file(a, "big.bin", 24)
    a.sync()
    phases: list[str] = []
    round_stopped_after(b, 6 * MIB, phases)
    assert "pulling" in phases
    assert not (b.root / "big.bin").exists()
    assert temp_files(b.root) == []  # the abandoned file went with the round
    b.sync()
    assert same_tree(a.root, b.root)


def test_an_idle_round_writes_nothing_to_the_relay(cluster: Cluster) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("f.txt", "one")
    for client in (a, b, a, b):
        client.sync()
    before = relay_objects(cluster)
    for client in (a, b):
        client.sync()
    assert relay_objects(cluster) == before
    b.write("g.txt", "two")  # a change is still published, and acknowledged
    b.sync()
    a.sync()
    assert same_tree(a.root, b.root) and relay_objects(cluster) != before
