"""The SFTP relay against real servers (OpenSSH sshd, or the asyncssh server where sshd is
missing) and real ``escale`` processes: the relay contract, SFTP's quirks, a server killed
mid-transfer, and one-line errors."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from escale_core.address import parse_relay_url
from escale_core.errors import RelayAuthError
from escale_core.plugins import Plugins
from escale_core.relay import Relay, open_relay
from escale_core.testing import OpenRelay, RelayConformance

from .clients import Client, Cluster
from .clients import toml_value as _toml
from .servers import children
from .servers.sftp import SSHD, SftpServer, start_asyncssh


@pytest.fixture(scope="session")
def sftp_plain_rename_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    """The asyncssh server without the posix-rename extension (as some SFTP servers)."""
    server = start_asyncssh(tmp_path_factory.mktemp("sftp-plain"), posix_rename=False)
    yield server
    server.server.stop()


def relay_opener(server: SftpServer, plugins: Plugins, folder: str, **extra: Any) -> OpenRelay:
    address = parse_relay_url(server.url(folder))
    options: dict[str, Any] = {**server.relay_options, **server.login, **extra}
    return lambda: open_relay(address, plugins.relays, **options)


class TestSftpConformance(RelayConformance):
    """The contract on sshd (posix-rename), and on a server with plain rename only."""

    @pytest.fixture(params=["sftp_server", "sftp_plain_rename_server"])
    def open_relay(self, request: pytest.FixtureRequest, plugins: Plugins) -> OpenRelay:
        server: SftpServer = request.getfixturevalue(request.param)
        return relay_opener(server, plugins, f"conf-{uuid.uuid4().hex[:8]}")


# -- SFTP quirks, on the relay -----------------------------------------------------------


@pytest.fixture
def folder() -> str:
    return f"quirk-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def relay(sftp_server: SftpServer, plugins: Plugins, folder: str) -> Iterator[Relay]:
    instance = relay_opener(sftp_server, plugins, folder)()
    yield instance
    instance.close()


def test_deleting_the_last_object_of_a_folder_removes_the_folder(
    relay: Relay, sftp_server: SftpServer, folder: str
) -> None:
    relay.write_bytes("data/c1/0000000001/000000", b"a")
    relay.write_bytes("data/c1/0000000001/000001", b"b")
    relay.write_bytes("data/c1/0000000002/000000", b"c")
    repo = sftp_server.files / folder
    relay.delete("data/c1/0000000001/000000")
    assert (repo / "data/c1/0000000001").is_dir()  # not empty yet
    relay.delete("data/c1/0000000001/000001")
    assert not (repo / "data/c1/0000000001").exists()
    relay.delete("data/c1/0000000002/000000")
    assert not (repo / "data").exists() and repo.is_dir()  # the repository folder stays


def test_a_write_into_a_folder_another_client_removed_recreates_it(
    relay: Relay, sftp_server: SftpServer, plugins: Plugins, folder: str
) -> None:
    relay.write_bytes("updates/c1/0000000001", b"1")  # the folder is now known to exist
    other = relay_opener(sftp_server, plugins, folder)()
    try:
        other.delete("updates/c1/0000000001")  # removes updates/c1 and updates
    finally:
        other.close()
    relay.write_stream("updates/c1/0000000002", iter([b"2", b"2"]))
    assert relay.list_sizes() == {"updates/c1/0000000002": 2}


def test_temporary_objects_are_never_listed_and_crash_leftovers_go_after_a_day(
    relay: Relay, sftp_server: SftpServer, folder: str
) -> None:
    relay.write_bytes("data/c1/0000000001/000000", b"kept")
    chunk_dir = sftp_server.files / folder / "data/c1/0000000001"
    old, fresh = chunk_dir / ".tmp-old", chunk_dir / ".tmp-fresh"
    old.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y" * 1000)  # a writer still at work
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    assert relay.list() == ["data/c1/0000000001/000000"]
    assert not old.exists() and fresh.exists()


@pytest.mark.parametrize("server_name", ["sftp_server", "sftp_password_server"])
def test_exclusive_create_has_one_winner_among_concurrent_clients(
    server_name: str, request: pytest.FixtureRequest, plugins: Plugins, folder: str
) -> None:
    opener = relay_opener(request.getfixturevalue(server_name), plugins, folder)
    relays = [opener() for _ in range(8)]
    wins: list[int] = []
    start = threading.Barrier(len(relays))

    def contend(index: int) -> None:
        start.wait()
        if relays[index].create_exclusive("locks/gc", f"owner {index} ".encode() * 1000):
            wins.append(index)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(relays))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(wins) == 1
        assert relays[0].read_bytes("locks/gc") == f"owner {wins[0]} ".encode() * 1000
        assert relays[0].list() == ["locks/gc"]  # no temporary object left
    finally:
        for instance in relays:
            instance.close()


def test_a_home_relative_url_names_a_folder_in_the_login_folder(
    sftp_password_server: SftpServer, plugins: Plugins, folder: str
) -> None:
    address = parse_relay_url(f"{sftp_password_server.url_prefix}/~/{folder}")
    options = {**sftp_password_server.relay_options, **sftp_password_server.login}
    instance = open_relay(address, plugins.relays, **options)
    try:
        instance.write_bytes("clients/c1", b"state")
        assert instance.list() == ["clients/c1"]
    finally:
        instance.close()
    # the asyncssh server's login folder is its root
    assert (sftp_password_server.files / folder / "clients/c1").read_bytes() == b"state"


def test_an_unknown_host_key_is_refused_unless_known_hosts_lists_it(
    sftp_server: SftpServer, plugins: Plugins, folder: str, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(RelayAuthError, match="host key"):
        relay_opener(sftp_server, plugins, folder, known_hosts=str(known))()
    port = parse_relay_url(sftp_server.url_prefix).port
    known.write_text(f"[127.0.0.1]:{port} {sftp_server.host_key.read_text()}")
    relay_opener(sftp_server, plugins, folder, known_hosts=str(known))().close()


def test_closing_the_relay_ends_the_servers_connection_process(
    sftp_server_own: SftpServer, plugins: Plugins, folder: str
) -> None:
    pid = sftp_server_own.server.process.pid  # type: ignore[union-attr]
    instance = relay_opener(sftp_server_own, plugins, folder)()
    instance.write_bytes("a", b"1")
    if sftp_server_own.server.command[0] == SSHD:  # sshd forks one process per connection
        assert alive(children(pid))
    instance.close()
    deadline = time.monotonic() + 10
    while alive(children(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(children(pid))


def test_the_relay_reconnects_after_the_server_restarted(
    sftp_server_own: SftpServer, plugins: Plugins, folder: str
) -> None:
    instance = relay_opener(sftp_server_own, plugins, folder)()
    try:
        instance.write_bytes("clients/a", b"1")
        sftp_server_own.server.kill()
        sftp_server_own.server.restart()
        assert instance.list() == ["clients/a"]  # retried on a new connection
        instance.write_bytes("clients/b", b"2")
        assert instance.list() == ["clients/a", "clients/b"]
    finally:
        instance.close()


def alive(pids: list[int]) -> list[int]:
    """The PIDs that are running (not gone, not zombies)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running


# -- real escale processes ---------------------------------------------------------------


def add_client(
    cluster: Cluster,
    server: SftpServer,
    name: str,
    extra: str = "",
    config: Optional[str] = None,
    **options: Any,
) -> Client:
    """A client of ``cluster`` with the server's credentials (``config`` replaces the
    server's section lines, ``options`` its relay options; ``None`` removes one)."""
    merged = {k: v for k, v in {**server.relay_options, **options}.items() if v is not None}
    table = "".join(f"{k} = {_toml(v)}\n" for k, v in merged.items())
    table = f"[shared.relay_options]\n{table}" if table else ""
    lines = server.config if config is None else config
    return cluster.add(name, extra=f"{lines}\n{extra}\n{table}")


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def run_one(
    cluster: Cluster, server: SftpServer, config: Optional[str] = None, **options: Any
) -> Any:
    client = add_client(cluster, server, "c", config=config, **options)
    return client.sync(check=False, timeout=120)


def test_a_wrong_password_is_one_line_exit_1(
    sftp_password_server: SftpServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = Cluster(tmp_path / "c", sftp_password_server.url("x"), isolated_env)
    run = run_one(cluster, sftp_password_server, config='password = "wrong"')
    assert run.returncode == 1
    line = one_error_line(run.stderr)
    assert "login refused for user relay" in line and "wrong" not in line


def test_an_untrusted_host_key_is_one_line_exit_1(
    sftp_server: SftpServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = Cluster(tmp_path / "c", sftp_server.url("x"), isolated_env)
    run = run_one(cluster, sftp_server, known_hosts=None)  # ~/.ssh/known_hosts: none here
    assert run.returncode == 1
    assert "host key of 127.0.0.1" in one_error_line(run.stderr)


def test_a_missing_client_key_file_is_one_line_exit_2(
    sftp_server: SftpServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = Cluster(tmp_path / "c", sftp_server.url("x"), isolated_env)
    run = run_one(cluster, sftp_server, client_keys=[str(tmp_path / "no_such_key")])
    assert run.returncode == 2
    assert "no_such_key does not exist" in one_error_line(run.stderr)


@pytest.mark.parametrize("case", ["unknown-host", "refused-connection"])
def test_an_unknown_host_or_a_refused_connection_is_one_line_exit_1(
    case: str, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    from .servers import free_port

    host = "no-such-host.invalid" if case == "unknown-host" else f"127.0.0.1:{free_port()}"
    cluster = Cluster(tmp_path / "c", f"sftp://u@{host}/x", isolated_env)  # nothing listens
    run = cluster.add("c", extra='password = "p"').sync(check=False, timeout=120)
    assert run.returncode == 1
    line = one_error_line(run.stderr)
    assert ("unknown host" if case == "unknown-host" else "connection refused") in line


def test_a_server_that_does_not_answer_is_one_line_exit_1_after_connect_timeout(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    with socket.socket() as silent:  # accepts connections, never speaks SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        cluster = Cluster(tmp_path / "c", f"sftp://u@127.0.0.1:{port}/x", isolated_env)
        extra = 'password = "p"\n[shared.relay_options]\nconnect_timeout = 1\n'
        run = cluster.add("c", extra=extra).sync(check=False, timeout=120)
    assert run.returncode == 1
    assert "did not answer in time" in one_error_line(run.stderr)
