"""The WebDAV relay against real WsgiDAV servers, and real escale processes through it."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from escale_core.address import parse_relay_url
from escale_core.errors import RelayAuthError
from escale_core.plugins import Plugins
from escale_core.relay import Relay, open_relay
from escale_core.testing import OpenRelay, RelayConformance

from .clients import Client, Cluster
from .conftest import Run, RunEscale
from .servers import RelayServer
from .servers.webdav import BASE, PASSWORD, USER

#: The WebDAV servers the relay is tested against: WsgiDAV and Apache httpd (mod_dav_fs).
SERVERS = ["webdav", "apache"]


@pytest.fixture(params=SERVERS)
def dav_server(request: pytest.FixtureRequest) -> RelayServer:
    """The session's server of each WebDAV implementation."""
    server: RelayServer = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture(params=SERVERS)
def dav_server_own(request: pytest.FixtureRequest) -> RelayServer:
    """A private server of each WebDAV implementation (``server.files``: its repositories)."""
    server: RelayServer = request.getfixturevalue(f"{request.param}_server_own")
    return server


@pytest.fixture(params=["webdavs", "apaches"])
def davs_server(request: pytest.FixtureRequest) -> RelayServer:
    """Each WebDAV implementation over HTTPS with a self-signed certificate."""
    server: RelayServer = request.getfixturevalue(f"{request.param}_server")
    return server


def password(server: RelayServer) -> str:
    """The password of the server's relay user (from its configuration lines)."""
    return server.config.split('password = "', 1)[1].split('"', 1)[0]


def relay_on(server: RelayServer, plugins: Plugins, folder: str) -> Relay:
    """A relay instance on ``folder`` of ``server``, as escale opens it."""
    address = parse_relay_url(server.url(folder))
    return open_relay(address, plugins.relays, password=password(server), **server.relay_options)


class TestwebdavConformance(RelayConformance):
    @pytest.fixture
    def open_relay(self, dav_server: RelayServer, plugins: Plugins) -> OpenRelay:
        folder = f"conf-{uuid.uuid4().hex[:8]}"
        return lambda: relay_on(dav_server, plugins, folder)


# -- the relay's own rules (one process, real server) ------------------------------------


def test_the_server_declares_atomic_rename_and_exclusive_create(
    dav_server: RelayServer, plugins: Plugins
) -> None:
    relay = relay_on(dav_server, plugins, f"caps-{uuid.uuid4().hex[:8]}")
    assert relay.capabilities.atomic_rename and relay.capabilities.exclusive_create


def test_exclusive_create_has_exactly_one_winner_among_concurrent_writers(
    dav_server: RelayServer, plugins: Plugins
) -> None:
    for _ in range(3):
        folder = f"race-{uuid.uuid4().hex[:8]}"
        relays = [relay_on(dav_server, plugins, folder) for _ in range(8)]
        results: dict[int, bool] = {}
        start = threading.Barrier(len(relays))
        threads = [
            threading.Thread(target=claim, args=(relay, f"writer {i}", start, results, i))
            for i, relay in enumerate(relays)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [i for i, won in results.items() if won]
        assert len(results) == 8 and len(winners) == 1, results
        assert relays[0].read_bytes("locks/gc") == f"writer {winners[0]}".encode()


def claim(
    relay: Relay, data: str, start: threading.Barrier, results: dict[int, bool], i: int
) -> None:
    start.wait()
    results[i] = relay.create_exclusive("locks/gc", data.encode())


def test_an_exclusive_create_abandoned_between_lock_and_write_is_taken_over(
    dav_server: RelayServer, plugins: Plugins
) -> None:
    """A writer killed after its LOCK left an empty object (or a lock-null resource); once its
    lock expires, the next create_exclusive writes the object instead of reporting it as
    existing."""
    folder = f"dead-{uuid.uuid4().hex[:8]}"
    relay = relay_on(dav_server, plugins, folder)
    relay.write_bytes("keep", b"")  # creates the folder
    port = dav_server.server.port
    lock = httpx.request(
        "LOCK",
        f"http://127.0.0.1:{port}/{BASE}/{folder}/escale.json",
        auth=(USER, password(dav_server)),
        headers={"Depth": "0", "Timeout": "Second-1"},
        content='<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        "</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>",
    )
    # WsgiDAV creates an empty object (201); Apache a lock-null resource (200), listed as empty
    assert lock.status_code in (200, 201)
    assert relay.list_sizes() == {"keep": 0, "escale.json": 0}
    assert relay.create_exclusive("escale.json", b"header")  # waits for the lock to expire
    assert relay.read_bytes("escale.json") == b"header"
    assert not relay.create_exclusive("escale.json", b"other")


def test_a_folder_removed_behind_the_relays_back_is_created_again(
    dav_server_own: RelayServer, plugins: Plugins, tmp_path: Path
) -> None:
    relay = relay_on(dav_server_own, plugins, "repo")
    relay.write_bytes("data/c1/0000000001/000000", b"first")
    relay.delete("data/c1/0000000001/000000")
    for leftover in sorted((dav_server_own.files / "repo" / "data").rglob("*"))[::-1]:
        leftover.rmdir()  # the relay still believes the folders exist
    relay.write_bytes("data/c1/0000000001/000001", b"second")
    assert relay.list() == ["data/c1/0000000001/000001"]


def test_folders_emptied_by_deletions_are_removed_by_the_next_full_listing(
    dav_server_own: RelayServer, plugins: Plugins, tmp_path: Path
) -> None:
    relay = relay_on(dav_server_own, plugins, "repo")
    relay.write_bytes("data/c1/0000000001/000000", b"1")
    relay.write_bytes("data/c1/0000000002/000000", b"2")
    relay.write_bytes("updates/c1/0000000002", b"u")
    relay.delete("data/c1/0000000001/000000")
    relay.delete("updates/c1/0000000002")
    assert relay.list() == ["data/c1/0000000002/000000"]
    repo = dav_server_own.files / "repo"
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*")) == [
        "data",
        "data/c1",
        "data/c1/0000000002",
        "data/c1/0000000002/000000",
    ]
    relay.write_bytes("updates/c1/0000000003", b"v")  # its folder, removed, is made again
    assert relay.read_bytes("updates/c1/0000000003") == b"v"


def test_temporaries_of_uploads_cut_short_long_ago_are_removed_and_never_listed(
    dav_server_own: RelayServer, plugins: Plugins, tmp_path: Path
) -> None:
    relay = relay_on(dav_server_own, plugins, "repo")
    relay.write_bytes("data/x", b"1")
    folder = dav_server_own.files / "repo" / "data"
    old, recent = folder / ".tmp-old", folder / ".tmp-recent"
    old.write_bytes(b"partial")
    recent.write_bytes(b"in progress")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert relay.list_sizes() == {"data/x": 1}
    assert not old.exists() and recent.exists()


# -- real escale processes ---------------------------------------------------------------


def add(cluster: Cluster, server: RelayServer, name: str, extra: str = "") -> Client:
    """A client of ``cluster`` with the server's credentials (and relay_options)."""
    options = "".join(f'{k} = "{v}"\n' for k, v in server.relay_options.items())
    table = f"[shared.relay_options]\n{options}" if options else ""
    return cluster.add(name, extra=f"{server.config}\n{extra}\n{table}")


def new_cluster(server: RelayServer, tmp_path: Path, env: dict[str, str]) -> Cluster:
    return Cluster(tmp_path / "clients", server.url(f"repo-{uuid.uuid4().hex[:8]}"), env)


def one_clear_error(run: Run, expected: str) -> None:
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and len(run.error_lines) == 1, run.stderr
    assert expected in run.stderr, run.stderr


def test_a_password_file_with_user_and_password_authenticates(
    webdav_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    secret = tmp_path / "dav-password"
    secret.write_text(f"{USER}:{PASSWORD}\n")
    url = webdav_server.url(f"repo-{uuid.uuid4().hex[:8]}").replace(f"{USER}@", "")
    cluster = Cluster(tmp_path / "clients", url, isolated_env)
    a = cluster.add("alice", extra=f'password_file = "{secret}"')
    b = cluster.add("bob", extra=f'password_file = "{secret}"')
    a.write("hello.txt", "hello")
    a.sync()
    b.sync()
    assert (b.root / "hello.txt").read_text() == "hello"


def sync_once(
    escale: RunEscale, tmp_path: Path, relay: str, extra: str = "", options: str = ""
) -> Run:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[s]\npath = "{tmp_path}/A"\nrelay = "{relay}"\nencryption = "plain"\n{extra}\n'
        + (f"[s.relay_options]\n{options}\n" if options else "")
    )
    return escale("-c", str(config), "sync", "s")


def test_digest_authentication_is_chosen_with_a_relay_option(
    webdav_server: RelayServer, plugins: Plugins
) -> None:
    address = parse_relay_url(webdav_server.url(f"digest-{uuid.uuid4().hex[:8]}"))
    relay = open_relay(address, plugins.relays, password=PASSWORD, auth="digest")
    relay.write_bytes("a", b"digest")
    assert relay.read_bytes("a") == b"digest"
    wrong = open_relay(address, plugins.relays, password="wrong", auth="digest")
    with pytest.raises(RelayAuthError, match="refused the credentials"):
        wrong.list()


def test_an_unknown_host_is_one_clear_line_exit_1(escale: RunEscale, tmp_path: Path) -> None:
    run = sync_once(escale, tmp_path, "webdav://u@no-such-host.invalid/x", 'password = "p"')
    one_clear_error(run, "unknown host 'no-such-host.invalid'")


def test_webdavs_with_the_servers_certificate_as_verify_syncs(
    davs_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = new_cluster(davs_server, tmp_path, isolated_env)
    a, b = add(cluster, davs_server, "alice"), add(cluster, davs_server, "bob")
    a.write("tls.txt", "over https")
    a.sync()
    b.sync()
    assert (b.root / "tls.txt").read_text() == "over https"


def test_webdavs_with_an_untrusted_certificate_is_one_clear_line_exit_1(
    escale: RunEscale, davs_server: RelayServer, tmp_path: Path
) -> None:
    run = sync_once(escale, tmp_path, davs_server.url("x"), davs_server.config)
    one_clear_error(run, "relay_options verify")


def test_unsupported_relay_options_are_one_clear_line(
    escale: RunEscale, webdav_server: RelayServer, tmp_path: Path
) -> None:
    run = sync_once(
        escale, tmp_path, webdav_server.url("x"), f'password = "{PASSWORD}"', "bogus = 1"
    )
    assert run.returncode in (1, 2) and "Traceback" not in run.stderr
    assert len(run.error_lines) == 1 and "unsupported relay_options" in run.stderr


def test_webdavs_with_verify_false_accepts_a_self_signed_server(
    webdavs_server: RelayServer, plugins: Plugins
) -> None:
    address = parse_relay_url(webdavs_server.url(f"insecure-{uuid.uuid4().hex[:8]}"))
    relay = open_relay(address, plugins.relays, password=PASSWORD, verify=False)
    relay.write_bytes("a", b"over TLS, unverified")
    assert relay.read_bytes("a") == b"over TLS, unverified"


def test_a_missing_ca_file_is_one_clear_line(
    escale: RunEscale, webdavs_server: RelayServer, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    run = sync_once(
        escale, tmp_path, webdavs_server.url("x"), 'password = "p"', f'verify = "{missing}"'
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr and len(run.error_lines) == 1
    assert f"verify: no CA file or folder {missing}" in run.stderr


def test_relay_check_names_the_webdav_server_and_what_it_allows(
    escale: RunEscale, dav_server: RelayServer, tmp_path: Path
) -> None:
    url = dav_server.url(f"check-{uuid.uuid4().hex[:8]}")
    run = sync_once(escale, tmp_path, url, dav_server.config)
    assert run.returncode == 0, run.stderr
    run = escale("-c", str(tmp_path / "c.toml"), "relay", "check", "s")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = {line.split("  ")[0]: line for line in run.stdout.splitlines()[1:]}
    assert all("FAILED" not in line for line in lines.values()), run.stdout
    apache = dav_server.server.command[0].endswith("apache2")
    assert ("Apache/" if apache else "WsgiDAV/") in lines["server"], run.stdout
    assert "LOCK (class 2)" in lines["locking"], run.stdout
    refused = "refused (HTTP 403)" in lines["PROPFIND infinity"]
    assert refused == apache, run.stdout  # Apache's DavDepthInfinity is off by default
