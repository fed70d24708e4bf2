"""The WebDAV relay against Apache httpd (mod_dav + mod_dav_fs, basic auth), as most WebDAV
hosts run it: what Apache really does where escale relies on it, and three real escale
processes converging through it (over HTTP and HTTPS). The relay's own rules and the
conformance suite run against Apache in tests/test_relay_webdav.py (``dav_server``), the
fault suite in tests/test_relay_faults.py."""

from __future__ import annotations

import base64
import os
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest

from escale_core.plugins import Plugins
from escale_core.probe import _server_checks

from .servers import RelayServer, children
from .servers.apache import BASE, PASSWORD, USER, start_apache, stop_apache
from .test_relay_webdav import relay_on

# The multi-client end-to-end tests of tests/test_sync_network.py, collected here again with
# this module's ``server`` fixture: Apache over HTTP, then over HTTPS (mod_ssl).
from .test_sync_network import (  # noqa: F401 - collected by pytest
    test_a_round_stopped_midway_over_a_network_relay_is_abandoned_and_then_completes,
    test_three_clients_converge_through_a_network_relay,
)


@pytest.fixture(params=["apache", "apaches"])
def server(request: pytest.FixtureRequest) -> RelayServer:
    """Apache over HTTP and over HTTPS (for the end-to-end tests imported above)."""
    found: RelayServer = request.getfixturevalue(f"{request.param}_server")
    return found


def url(server: RelayServer, name: str) -> str:
    return f"http://127.0.0.1:{server.server.port}/{BASE}/{name}"


def test_apache_refuses_a_wrong_password_and_an_unknown_user_with_401(
    apache_server: RelayServer,
) -> None:
    for auth in ((USER, "wrong"), ("nobody", PASSWORD)):
        assert httpx.get(url(apache_server, ""), auth=auth).status_code == 401


def test_apache_refuses_propfind_depth_infinity_and_the_relay_lists_nested_folders(
    apache_server: RelayServer, plugins: Plugins
) -> None:
    folder = f"deep-{uuid.uuid4().hex[:8]}"
    relay = relay_on(apache_server, plugins, folder)
    relay.write_bytes("data/c1/0000000001/000000", b"deep")
    response = httpx.request(
        "PROPFIND",
        url(apache_server, f"{folder}/"),
        auth=(USER, PASSWORD),
        headers={"Depth": "infinity"},
    )
    assert response.status_code == 403  # DavDepthInfinity is off by default
    assert relay.list_sizes() == {"data/c1/0000000001/000000": 4}


def test_apache_stores_a_chunked_put_whole(apache_server: RelayServer) -> None:
    name = f"chunked-{uuid.uuid4().hex[:8]}"
    pieces = [os.urandom(100_000) for _ in range(5)]
    put = httpx.put(url(apache_server, name), content=iter(pieces), auth=(USER, PASSWORD))
    assert put.status_code == 201 and put.request.headers["Transfer-Encoding"] == "chunked"
    assert httpx.get(url(apache_server, name), auth=(USER, PASSWORD)).content == b"".join(pieces)


def cut_put(server: RelayServer, name: str, sent: int, size: int) -> None:
    """A PUT announcing ``size`` bytes whose connection drops after ``sent``."""
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with socket.create_connection(("127.0.0.1", server.server.port)) as sock:
        sock.sendall(
            f"PUT /{BASE}/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {token}"
            f"\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        sock.sendall(os.urandom(sent))
        time.sleep(0.3)


def test_a_put_cut_in_the_middle_leaves_nothing_under_its_name_and_the_old_object_whole(
    apache_server: RelayServer,
) -> None:
    """mod_dav_fs writes a PUT to ``.davfs.tmp<random>`` and renames it when complete."""
    assert apache_server.files is not None
    new, old = f"cut-{uuid.uuid4().hex[:8]}", f"old-{uuid.uuid4().hex[:8]}"
    assert httpx.put(url(apache_server, old), content=b"old", auth=(USER, PASSWORD)).is_success
    cut_put(apache_server, new, 2_000_000, 10_000_000)
    cut_put(apache_server, old, 2_000_000, 10_000_000)
    deadline = time.monotonic() + 10
    while any(p.name.startswith(".davfs.tmp") for p in apache_server.files.iterdir()):
        assert time.monotonic() < deadline, "Apache left its temporary file"
        time.sleep(0.05)
    assert not (apache_server.files / new).exists()
    assert (apache_server.files / old).read_bytes() == b"old"


def test_temporaries_left_by_an_apache_killed_mid_put_are_never_listed(
    apache_server_own: RelayServer, plugins: Plugins
) -> None:
    """mod_dav_fs hides its ``.davfs.tmp*`` files from PROPFIND (a GET still finds them), so
    the relay never sees them; removing them is the server's business."""
    assert apache_server_own.files is not None
    relay = relay_on(apache_server_own, plugins, "repo")
    relay.write_bytes("data/x", b"1")
    leftover = apache_server_own.files / "repo" / "data" / ".davfs.tmp1a2b3c"
    leftover.write_bytes(b"partial")  # as a server killed in the middle of a PUT leaves it
    assert relay.list_sizes() == {"data/x": 1}
    assert relay.list() == ["data/x"]


def test_apache_leaves_no_process_behind_when_stopped(tmp_path: Path) -> None:
    server = start_apache(tmp_path)
    assert server.server.process is not None
    pid = server.server.process.pid
    workers = children(pid)
    assert workers, "Apache's event MPM runs worker processes"
    stop_apache(server)
    assert not [p for p in [pid, *workers] if Path(f"/proc/{p}").exists()]
    assert server.files is not None and not server.files.exists()


def test_relay_check_reports_a_server_that_stops_answering_as_one_failed_line(
    apache_server_own: RelayServer, plugins: Plugins
) -> None:
    relay = relay_on(apache_server_own, plugins, "repo")
    relay.write_bytes("a", b"1")
    apache_server_own.server.stop()
    lines = _server_checks(relay)
    assert [(c.name, c.ok) for c in lines] == [("server", False)], lines
    assert "cannot connect to the WebDAV server 127.0.0.1" in lines[0].detail
    apache_server_own.server.restart()
    assert [c.name for c in _server_checks(relay)] == ["server", "locking", "PROPFIND infinity"]
