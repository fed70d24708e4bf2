"""The FTP relay against a real pyftpdlib server, and real escale processes through it."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from escale_core.address import parse_relay_url
from escale_core.plugins import Plugins
from escale_core.relay import Relay, open_relay
from escale_core.testing import OpenRelay, RelayConformance

from .clients import Client, Cluster, same_tree
from .servers import RelayServer, free_port
from .servers.ftp import PASSWORD

MIB = 1 << 20
PAGE = 'max_page_size = "4MiB"'


def relay_opener(server: RelayServer, plugins: Plugins) -> OpenRelay:
    """Open relays on one fresh repository folder of ``server``."""
    address = parse_relay_url(server.url(f"conf-{uuid.uuid4().hex[:8]}"))
    options = {"password": PASSWORD, **server.relay_options}
    return lambda: open_relay(address, plugins.relays, **options)


class TestftpConformance(RelayConformance):
    @pytest.fixture
    def open_relay(self, ftp_server: RelayServer, plugins: Plugins) -> OpenRelay:
        return relay_opener(ftp_server, plugins)


class TestftpsConformance(RelayConformance):
    """The same contract over explicit TLS (skipped without pyOpenSSL for the server)."""

    @pytest.fixture
    def open_relay(self, ftps_server: RelayServer, plugins: Plugins) -> OpenRelay:
        return relay_opener(ftps_server, plugins)


# -- FTP-specific rules of the relay -----------------------------------------------------------


@pytest.fixture
def two_relays(ftp_server: RelayServer, plugins: Plugins) -> Iterator[tuple[Relay, Relay]]:
    opener = relay_opener(ftp_server, plugins)
    mine, other = opener(), opener()
    yield mine, other
    mine.close()
    other.close()


def test_a_read_after_another_clients_overwrite_returns_the_new_object_whole(
    two_relays: tuple[Relay, Relay],
) -> None:
    mine, other = two_relays
    mine.write_bytes("clients/c", b"short")
    assert other.list_sizes() == {"clients/c": 5}
    mine.write_bytes("clients/c", b"a much longer second version")
    assert other.read_bytes("clients/c") == b"a much longer second version"
    assert b"".join(other.read_stream("clients/c")) == b"a much longer second version"


def test_a_relay_reconnects_after_the_server_dropped_its_connection(
    ftp_server_own: RelayServer, plugins: Plugins
) -> None:
    relay = relay_opener(ftp_server_own, plugins)()
    relay.write_bytes("updates/c/1", b"one")
    ftp_server_own.server.kill()
    ftp_server_own.server.restart()
    assert relay.list() == ["updates/c/1"]  # the dead control connection is replaced
    relay.write_bytes("updates/c/2", b"two")
    assert relay.read_bytes("updates/c/2") == b"two"
    relay.close()


def test_a_partly_read_stream_leaves_the_relay_usable(
    two_relays: tuple[Relay, Relay],
) -> None:
    relay, _ = two_relays
    relay.write_stream("data/big", iter([os.urandom(MIB) for _ in range(4)]))
    stream = relay.read_stream("data/big")
    next(stream)
    stream.close()  # the engine stops reading (e.g. on a tampered object)
    relay.write_bytes("data/small", b"small")
    assert relay.read_bytes("data/small") == b"small"
    assert relay.list_sizes() == {"data/big": 4 * MIB, "data/small": 5}


def test_deleting_the_last_object_of_a_folder_removes_the_emptied_folders(
    ftp_server_own: RelayServer, plugins: Plugins, tmp_path: Path
) -> None:
    relay = open_relay(
        parse_relay_url(ftp_server_own.url("repo")), plugins.relays, password=PASSWORD
    )
    relay.write_bytes("data/c/0000000001/000000", b"1")
    relay.write_bytes("data/c/0000000002/000000", b"2")
    relay.delete("data/c/0000000001/000000")
    repo = tmp_path / "ftp-root/repos/repo"
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*")) == [
        "data",
        "data/c",
        "data/c/0000000002",
        "data/c/0000000002/000000",
    ]
    relay.delete("data/c/0000000002/000000")
    assert list(repo.iterdir()) == []
    relay.write_bytes("data/c/0000000003/000000", b"3")  # folders it knew are created again
    assert relay.list() == ["data/c/0000000003/000000"]
    relay.close()


def test_a_temporary_left_by_a_writer_killed_long_ago_is_removed_by_a_listing(
    ftp_server_own: RelayServer, plugins: Plugins, tmp_path: Path
) -> None:
    relay = open_relay(
        parse_relay_url(ftp_server_own.url("repo")), plugins.relays, password=PASSWORD
    )
    relay.write_bytes("data/c/1/000000", b"kept")
    folder = tmp_path / "ftp-root/repos/repo/data/c/1"
    old, recent = folder / ".tmp-0ld", folder / ".tmp-rec3nt"
    old.write_bytes(b"partial")
    recent.write_bytes(b"being written")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert relay.list_sizes() == {"data/c/1/000000": 4}
    assert not old.exists() and recent.exists()  # a writer may still be busy with it
    relay.close()


def test_exclusive_create_is_declared_best_effort(two_relays: tuple[Relay, Relay]) -> None:
    relay, _ = two_relays
    assert relay.capabilities.atomic_rename and not relay.capabilities.exclusive_create


# -- real escale processes ---------------------------------------------------------------------


def add(cluster: Cluster, server: RelayServer, name: str, extra: str = "") -> Client:
    options = "".join(f'{k} = "{v}"\n' for k, v in server.relay_options.items())
    table = f"[shared.relay_options]\n{options}" if options else ""
    return cluster.add(name, extra=f"{server.config}\n{extra}\n{table}")


def error_lines(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert not any("Traceback" in line or "internal error" in line for line in lines), stderr
    return lines


@pytest.mark.parametrize(
    ("relay", "config", "expected"),
    [
        ("ftp://relay@127.0.0.1:{port}/repos/x", 'password = "wrong"', "login refused"),
        ("ftp://relay@no-such-host.invalid/repos/x", 'password = "x"', "cannot resolve host"),
        ("ftp://relay@127.0.0.1:{free}/repos/x", 'password = "x"', "connection refused"),
        (
            "ftps://relay@127.0.0.1:{free}/repos/x",
            'password = "x"\n[shared.relay_options]\nca_file = "/nonexistent/ca.pem"',
            "relay_options.ca_file: cannot use /nonexistent/ca.pem",
        ),
    ],
    ids=["wrong-password", "unknown-host", "refused-connection", "missing-ca-file"],
)
def test_a_relay_that_cannot_be_used_is_one_clear_error_line(
    ftp_server: RelayServer,
    tmp_path: Path,
    isolated_env: dict[str, str],
    relay: str,
    config: str,
    expected: str,
) -> None:
    port = parse_relay_url(ftp_server.url("x")).port
    url = relay.format(port=port, free=free_port())
    client = Cluster(tmp_path / "clients", url, isolated_env).add("alice", extra=config)
    client.write("a.txt", "a")
    run = client.sync(check=False, timeout=120)
    assert run.returncode in (1, 2), run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and expected in lines[0], run.stderr


def test_an_untrusted_tls_certificate_is_one_clear_error_line(
    ftps_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    client = Cluster(tmp_path / "clients", ftps_server.url("x"), isolated_env).add(
        "alice",
        extra=ftps_server.config,  # no ca_file: the self-signed certificate is unknown
    )
    run = client.sync(check=False)
    assert run.returncode == 1, run.stderr
    lines = error_lines(run.stderr)
    assert len(lines) == 1 and "certificate is not trusted" in lines[0], run.stderr


def test_two_clients_converge_over_ftps(
    ftps_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = Cluster(
        tmp_path / "clients", ftps_server.url(f"r-{uuid.uuid4().hex[:8]}"), isolated_env
    )
    a = add(cluster, ftps_server, "alice", PAGE)
    b = add(cluster, ftps_server, "bob")
    a.write("docs/a.txt", "over TLS")
    a.write("big.bin", os.urandom(9 * MIB))
    a.sync()
    b.sync()
    assert same_tree(a.root, b.root)
