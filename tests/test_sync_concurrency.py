"""Several escale processes pushing at the same moment through one ``file://`` relay, without
any coordination: no update is lost or overwritten (DESIGN §2.1)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from .clients import Client, Cluster, same_tree, tree

MIB = 1 << 20
T0 = 1_700_000_000_000_000_000


def put(client: Client, rel: str, data: bytes | str, mtime_ns: int) -> None:
    """Write a file with an exact nanosecond mtime."""
    path = client.write(rel, data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def sync_all_at_once(clients: Sequence[Client]) -> None:
    """Start one round in every client at the same time; each must end in sync."""
    procs = [c.start_sync() for c in clients]
    failures = []
    for client, proc in zip(clients, procs):
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"{client.name}: exit {proc.returncode}\n{out}\n{err}")
    assert not failures, "\n".join(failures)


def settle(clients: Sequence[Client], rounds: int = 2) -> None:
    """Plain sequential rounds after the concurrent ones."""
    for _ in range(rounds):
        for client in clients:
            client.sync()


def test_concurrent_pushes_repeated_lose_no_file(cluster: Cluster) -> None:
    clients = [cluster.add(n, extra="pullers = 3") for n in ("p1", "p2", "p3", "p4")]
    expected: dict[str, tuple[bytes, int]] = {}
    for wave in range(4):
        for n, client in enumerate(clients):
            stamp = T0 + wave * 1_000_000_000 + n
            for i in range(6):
                rel = f"{client.name}/wave{wave}/f{i}.txt"
                data = os.urandom(500 + 97 * i)
                put(client, rel, data, stamp + i)
                expected[rel] = (data, stamp + i)
            # each client keeps rewriting its own file: only the last version may survive
            own = f"own/{client.name}.dat"
            data = f"{client.name} version {wave}".encode() * (wave + 1)
            put(client, own, data, stamp)
            expected[own] = (data, stamp)
        sync_all_at_once(clients)
    sync_all_at_once(clients)
    settle(clients)
    for client in clients:
        assert tree(client.root) == expected, client.name
    for other in clients[1:]:
        assert same_tree(clients[0].root, other.root)


def test_concurrent_first_rounds_create_one_repository_and_share_everything(
    cluster: Cluster,
) -> None:
    clients = [cluster.add(f"c{i}", extra="pullers = 3") for i in range(4)]
    expected = {}
    for n, client in enumerate(clients):
        data = os.urandom(2 * MIB + n)  # a chunked file from each, pushed at the same moment
        put(client, f"big/{client.name}.bin", data, T0 + n)
        put(client, f"small/{client.name}.txt", client.name, T0 + 10 + n)
        expected[f"big/{client.name}.bin"] = (data, T0 + n)
        expected[f"small/{client.name}.txt"] = (client.name.encode(), T0 + 10 + n)
    sync_all_at_once(clients)  # they race to create the repository header too
    settle(clients)
    for client in clients:
        assert tree(client.root) == expected, client.name


def test_concurrent_edits_and_deletions_of_different_files_all_apply(cluster: Cluster) -> None:
    clients = [cluster.add(n, extra="pullers = 2") for n in ("e1", "e2", "e3")]
    first = clients[0]
    for i in range(9):
        put(first, f"common/{i}.txt", f"original {i}", T0 + i)
    settle(clients, rounds=1)
    settle(clients, rounds=1)
    for client in clients:
        assert len(tree(client.root)) == 9
    expected = {f"common/{i}.txt": (f"original {i}".encode(), T0 + i) for i in range(9)}
    for n, client in enumerate(clients):
        edit, gone = f"common/{3 * n}.txt", f"common/{3 * n + 1}.txt"
        put(client, edit, f"edited by {client.name}", T0 + 100 + n)
        expected[edit] = (f"edited by {client.name}".encode(), T0 + 100 + n)
        (client.root / gone).unlink()
        del expected[gone]
        put(client, f"added/{client.name}.txt", "new", T0 + 200 + n)
        expected[f"added/{client.name}.txt"] = (b"new", T0 + 200 + n)
    sync_all_at_once(clients)
    sync_all_at_once(clients)
    settle(clients)
    for client in clients:
        assert tree(client.root) == expected, client.name


def test_same_file_edited_by_two_clients_at_once_keeps_both_versions(cluster: Cluster) -> None:
    a, b = cluster.add("alpha", extra="pullers = 1"), cluster.add("beta", extra="pullers = 1")
    put(a, "report.txt", "original", T0)
    settle([a, b], rounds=1)
    put(a, "report.txt", "alpha's edit", T0 + 10)
    put(b, "report.txt", "beta's longer edit", T0 + 20)
    sync_all_at_once([a, b])
    settle([a, b])
    final = tree(a.root)
    assert final == tree(b.root)
    assert final["report.txt"] == (b"beta's longer edit", T0 + 20), "the later edit keeps the name"
    copies = [p for p in final if p.startswith("report.sync-conflict-")]
    assert len(copies) == 1, final.keys()
    assert copies[0].endswith("-alpha.txt")
    assert final[copies[0]] == (b"alpha's edit", T0 + 10)
