"""The FTP relay against the servers users run: vsftpd and ProFTPD, plain and explicit TLS."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from escale_core.address import parse_relay_url
from escale_core.errors import RelayError
from escale_core.plugins import Plugins
from escale_core.relay import open_relay
from escale_core.testing import OpenRelay, RelayConformance

from .clients import Cluster, add, relay_check, same_tree
from .servers import RelayServer
from .servers.ftp import PASSWORD, start_proftpd

SERVERS = ["vsftpd_server", "vsftpds_server", "proftpd_server", "proftpds_server"]


def relay_opener(server: RelayServer, plugins: Plugins) -> OpenRelay:
    """Open relays on one fresh repository folder of ``server``."""
    address = parse_relay_url(server.url(f"conf-{uuid.uuid4().hex[:8]}"))
    options = {"password": PASSWORD, **server.relay_options}
    return lambda: open_relay(address, plugins.relays, **options)


class TestServerConformance(RelayConformance):
    @pytest.fixture(params=SERVERS)
    def open_relay(self, request: pytest.FixtureRequest, plugins: Plugins) -> OpenRelay:
        return relay_opener(request.getfixturevalue(request.param), plugins)


# -- where vsftpd and ProFTPD differ from pyftpdlib --------------------------------------------


@pytest.fixture
def proftpd_home(tmp_path: Path) -> Iterator[RelayServer]:
    """ProFTPD without chroot: ``/`` is the machine's root, ``/~/`` the login folder."""
    (tmp_path / "home").mkdir()
    server = start_proftpd(tmp_path / "home", tmp_path, chroot=False)
    yield server
    server.server.stop()


def test_a_tilde_path_names_a_folder_inside_the_login_folder(
    proftpd_home: RelayServer, plugins: Plugins
) -> None:
    assert proftpd_home.url_prefix.endswith("/~/repos")
    relay = relay_opener(proftpd_home, plugins)()
    try:
        relay.write_bytes("data/one", b"payload")
        assert relay.list_sizes() == {"data/one": 7}
    finally:
        relay.close()
    assert proftpd_home.files is not None
    written = [p for p in proftpd_home.files.rglob("one")]
    assert len(written) == 1 and written[0].read_bytes() == b"payload"


@pytest.mark.parametrize("name", ["vsftpd_server", "proftpd_home"])
def test_a_folder_the_account_cannot_create_is_one_error_naming_it(
    name: str, request: pytest.FixtureRequest, plugins: Plugins
) -> None:
    """vsftpd said only "553 Could not create file" at the STOR (the issue's report): the
    refused MKD of the repository folder is the cause, and the error names it."""
    server: RelayServer = request.getfixturevalue(name)
    folder = f"escale-outside-{uuid.uuid4().hex[:8]}"  # at the server's root: not writable
    host = server.url_prefix.split("/")[2]  # user@127.0.0.1:port
    address = parse_relay_url(f"{server.name}://{host}/{folder}")
    relay = open_relay(address, plugins.relays, password=PASSWORD, **server.relay_options)
    try:
        with pytest.raises(RelayError) as caught:
            relay.write_bytes("escale.json", b"{}")
    finally:
        relay.close()
    message = str(caught.value)
    assert f"cannot create folder /{folder}" in message and "/~/path" in message
    assert "\n" not in message and "553" not in message


def test_vsftpd_lists_through_list_and_proftpd_through_mlsd(
    vsftpd_server: RelayServer, proftpd_server: RelayServer, plugins: Plugins
) -> None:
    for server, mlsd in ((vsftpd_server, False), (proftpd_server, True)):
        relay = relay_opener(server, plugins)()
        try:
            relay.write_bytes("a b/c d", b"123")  # names with spaces survive LIST parsing
            assert relay.list_sizes() == {"a b/c d": 3}
            assert relay.has_mlsd is mlsd  # type: ignore[attr-defined]
        finally:
            relay.close()


def test_a_temporary_object_hidden_from_plain_list_is_still_seen_and_cleaned(
    vsftpd_server: RelayServer, plugins: Plugins
) -> None:
    """vsftpd hides dot files from a plain LIST: the relay asks for ``LIST -a``."""
    relay = relay_opener(vsftpd_server, plugins)()
    try:
        relay.write_bytes("data/x", b"1")
        ftp = relay._ftp()  # type: ignore[attr-defined]
        ftp.storbinary(f"STOR {relay._path('data/.tmp-left')}", io.BytesIO(b"partial"))  # type: ignore[attr-defined]
        assert relay.temp_objects() == ["data/.tmp-left"]
        assert relay.list_sizes() == {"data/x": 1}
    finally:
        relay.close()


@pytest.mark.parametrize(
    ("name", "banner", "listing"),
    [
        ("vsftpd_server", "vsFTPd", "LIST -a"),
        ("vsftpds_server", "vsFTPd", "LIST -a"),
        ("proftpd_server", "ProFTPD", "MLSD"),
        ("proftpds_server", "ProFTPD", "MLSD"),
    ],
)
def test_relay_check_passes_and_tells_the_servers_listing_and_rename(
    name: str,
    banner: str,
    listing: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    isolated_env: dict[str, str],
) -> None:
    out = relay_check(request.getfixturevalue(name), tmp_path, isolated_env)
    print(out)  # shown by pytest -rP: docs/relays.md quotes it
    assert "FAILED" not in out, out
    lines = {line.split("  ", 1)[0]: line for line in out.splitlines()}
    assert banner in lines["ftp server"] and listing in lines["ftp listings"], out
    assert "replaces an existing object" in lines["ftp RNFR/RNTO"], out


@pytest.mark.parametrize("name", ["vsftpds_server", "proftpds_server"])
def test_two_clients_converge_over_ftps(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    server: RelayServer = request.getfixturevalue(name)
    cluster = Cluster(tmp_path / "clients", server.url(f"r-{uuid.uuid4().hex[:8]}"), isolated_env)
    a = add(cluster, server, "alice", 'max_page_size = "4MiB"')
    b = add(cluster, server, "bob")
    a.write("docs/a b.txt", "over TLS")
    a.write("big.bin", os.urandom(9 << 20))
    a.sync()
    b.write("from-bob.txt", "hello")
    b.sync()
    a.sync()
    assert same_tree(a.root, b.root)


def strict_proftpd(tmp_path: Path, tls: bool, line: str) -> RelayServer:
    (tmp_path / "root").mkdir()
    return start_proftpd(tmp_path / "root", tmp_path, tls=tls, without=(line,))


def test_a_proftpd_refusing_to_replace_files_is_one_error_naming_its_setting(
    tmp_path: Path, plugins: Plugins
) -> None:
    server = strict_proftpd(tmp_path, False, "AllowOverwrite on")
    relay = relay_opener(server, plugins)()
    try:
        relay.write_bytes("state", b"1")  # a new name: allowed
        with pytest.raises(RelayError) as caught:
            relay.write_bytes("state", b"2")
        assert relay.read_bytes("state") == b"1"  # the published object is untouched
        assert relay.temp_objects() == []  # and the refused temporary is gone
    finally:
        relay.close()
        server.server.stop()
    assert "AllowOverwrite on" in str(caught.value) and "not found" not in str(caught.value)


@pytest.mark.parametrize("size", [1, 8 << 20], ids=["1 byte", "8 MiB"])
def test_an_ftps_server_requiring_tls_session_reuse_is_told_how_to_fix(
    tmp_path: Path, plugins: Plugins, size: int
) -> None:
    """The server's 425 is the message, also when the refused data connection breaks the
    upload first (8 MiB cannot fit in the socket's buffers: the send fails, broken pipe)."""
    server = strict_proftpd(tmp_path, True, "TLSOptions NoSessionReuseRequired")
    relay = relay_opener(server, plugins)()
    try:
        with pytest.raises(RelayError) as caught:
            relay.write_bytes("x", b"1" * size)
    finally:
        relay.close()
        server.server.stop()
    message = str(caught.value)
    assert "TLSOptions NoSessionReuseRequired" in message and "\n" not in message


def test_a_listing_larger_than_any_repository_is_refused_not_followed(
    vsftpd_server: RelayServer, plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays bounded against a server that lists without end (here: a low limit)."""
    import escale_relay_ftp.relay as ftp_relay

    relay = relay_opener(vsftpd_server, plugins)()
    try:
        for name in ("a/1", "a/2", "b/3"):
            relay.write_bytes(name, b"x")
        assert len(relay.list_sizes()) == 3
        monkeypatch.setattr(ftp_relay, "MAX_LISTED", 4)  # 2 folders + 3 files listed
        with pytest.raises(RelayError, match="lists more than 4 files and folders"):
            relay.list_sizes()
    finally:
        relay.close()
