"""The end-to-end multi-client suite over each network relay: three real escale processes,
encryption on, through WebDAV, SFTP, FTP and S3 servers started on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .clients import (
    MIB,
    Client,
    add,
    big_file,
    network_cluster,
    round_stopped_after,
    same_tree,
    tree,
)
from .servers import RelayServer

BACKENDS = ["webdav", "sftp", "ftp", "s3", "vsftpd", "proftpd"]


def converge(clients: list[Client], rounds: int = 3) -> None:
    for _ in range(rounds):
        for client in clients:
            client.sync()
        if all(tree(c.root) == tree(clients[0].root) for c in clients[1:]):
            return
    raise AssertionError({c.name: sorted(tree(c.root)) for c in clients})


@pytest.fixture(params=BACKENDS)
def server(request: pytest.FixtureRequest) -> RelayServer:
    try:
        found: RelayServer = request.getfixturevalue(f"{request.param}_server")
    except pytest.FixtureLookupError:
        pytest.skip(f"no {request.param} test server fixture (tests/servers/{request.param}.py)")
    return found


def test_three_clients_converge_through_a_network_relay(
    server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = network_cluster(server, tmp_path, isolated_env)
    a, b, c = (add(cluster, server, n, "pullers = 2") for n in ("alice", "bob", "carol"))
    a.write("docs/report.txt", "v1", mtime=1_600_000_000)
    a.write("ünï cödé/with space.md", "# unicode")
    a.write("empty", b"")
    b.write("deep/er/still/b.bin", os.urandom(300_000))
    big = a.write("big.bin", b"")
    with open(big, "wb") as out:
        for _ in range(100):
            out.write(os.urandom(MIB))
    converge([a, b, c])
    a.write("docs/report.txt", "v2, edited by alice")
    (b.root / "deep/er/still/b.bin").unlink()
    c.write("from-carol.txt", "hello")
    converge([a, b, c])
    assert same_tree(a.root, b.root) and same_tree(a.root, c.root)
    assert (c.root / "docs/report.txt").read_text() == "v2, edited by alice"
    assert not (c.root / "deep/er/still/b.bin").exists()
    assert (a.root / "big.bin").stat().st_size == 100 * MIB


def test_a_round_stopped_midway_over_a_network_relay_is_abandoned_and_then_completes(
    server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = network_cluster(server, tmp_path, isolated_env)
    a = add(cluster, server, "alice", 'max_page_size = "1MiB"')
    b = add(cluster, server, "bob")
    big_file(a, "big.bin", 8)
    round_stopped_after(a, 3 * MIB, [])  # the relay lets escale's own stop through
    b.sync()
    assert not (b.root / "big.bin").exists()
    converge([a, b])
    assert same_tree(a.root, b.root)
