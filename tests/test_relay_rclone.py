"""The rclone relay against real rclone: ``local`` and ``alias`` remotes of a generated
rclone.conf, and ``rclone serve webdav|sftp|ftp`` servers reached as configured or on-the-fly
remotes; its ``rclone rcd`` (started lazily, restarted when killed, stopped with the relay),
one-line errors, and real ``escale`` processes syncing through it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from escale_core.address import parse_relay_url
from escale_core.errors import ConfigError, MissingDependencyError, RelayError, RelayNotFoundError
from escale_core.plugins import Plugins
from escale_core.relay import Relay, open_relay
from escale_core.testing import OpenRelay, RelayConformance

from . import test_sync_network as network
from .servers import RelayServer, ServerProcess
from .servers.ftp import PASSWORD as FTP_PASSWORD
from .servers.ftp import USER as FTP_USER
from .servers.rclone import (
    PASSWORD,
    USER,
    obscured,
    rclone_binary,
    serve,
)


@pytest.fixture(scope="module")
def rclone_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration with a ``local`` remote ``disk`` and an ``alias`` remote ``store`` of
    one of its folders."""
    rclone_binary()
    base = tmp_path_factory.mktemp("rclone-conf")
    (base / "store").mkdir()
    config = base / "rclone.conf"
    config.write_text(
        f"[disk]\ntype = local\n\n[store]\ntype = alias\nremote = disk:{base / 'store'}\n",
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """``rclone serve sftp`` of a folder (Debian's rclone has no ``serve ftp``)."""
    rclone_binary()
    servers = {}
    for kind in ("sftp",):
        base = tmp_path_factory.mktemp(f"rclone-serve-{kind}")
        (base / "files").mkdir()
        servers[kind] = serve(kind, base / "files", base)
    yield servers
    for server in servers.values():
        server.stop()


def opener(plugins: Plugins, url: str, **options: Any) -> OpenRelay:
    address = parse_relay_url(url)
    return lambda: open_relay(address, plugins.relays, **options)


class TestRcloneConformance(RelayConformance):
    """The contract through local, alias, configured WebDAV (``rclone serve webdav``),
    on-the-fly SFTP (``rclone serve sftp``) and FTP (pyftpdlib) remotes."""

    @pytest.fixture(params=["local", "alias", "webdav", "sftp", "ftp"])
    def open_relay(
        self,
        request: pytest.FixtureRequest,
        plugins: Plugins,
        rclone_conf: Path,
        tmp_path: Path,
    ) -> OpenRelay:
        folder = f"conf-{uuid.uuid4().hex[:8]}"
        if request.param == "local":
            return opener(plugins, f"rclone://disk/{tmp_path}/{folder}", config=str(rclone_conf))
        if request.param == "alias":
            return opener(plugins, f"rclone://store/{folder}", config=str(rclone_conf))
        if request.param == "webdav":
            server: RelayServer = request.getfixturevalue("rclone_server")
            return opener(plugins, server.url(folder), **server.relay_options)
        if request.param == "ftp":  # the FTP relay's pyftpdlib server, through rclone's ftp
            ftp: RelayServer = request.getfixturevalue("ftp_server")
            port, user, password = ftp.server.port, FTP_USER, FTP_PASSWORD
            folder = f"repos/{folder}"
        else:
            port = request.getfixturevalue("served")["sftp"].port
            user, password = USER, PASSWORD
        remote = (
            f":{request.param},host=127.0.0.1,port={port},user={user},pass={obscured(password)}"
        )
        return opener(plugins, f"rclone://x/{folder}", remote=remote, config=str(rclone_conf))


# -- the daemon ----------------------------------------------------------------------------


@pytest.fixture
def relay(plugins: Plugins, rclone_conf: Path, tmp_path: Path) -> Iterator[Relay]:
    instance = opener(plugins, f"rclone://disk/{tmp_path}/repo", config=str(rclone_conf))()
    yield instance
    instance.close()


def rcd_pid(relay: Relay) -> int:
    process = relay.daemon.process  # type: ignore[attr-defined]
    assert process is not None and process.poll() is None
    return int(process.pid)


def test_the_daemon_starts_on_first_use_and_stops_with_the_relay(relay: Relay) -> None:
    assert relay.daemon.process is None  # type: ignore[attr-defined]
    relay.write_bytes("a", b"1")
    pid = rcd_pid(relay)
    relay.close()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_the_daemons_credentials_are_random_and_never_on_its_command_line(
    relay: Relay, rclone_conf: Path, plugins: Plugins, tmp_path: Path
) -> None:
    relay.list()
    pid = rcd_pid(relay)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"--rc-no-auth" not in cmdline
    assert not any(arg.startswith((b"--rc-user", b"--rc-pass")) for arg in cmdline)
    other = opener(plugins, f"rclone://disk/{tmp_path}/repo", config=str(rclone_conf))()
    try:
        other.list()
        assert other.daemon._auth != relay.daemon._auth  # type: ignore[attr-defined]
    finally:
        other.close()


def test_a_killed_daemon_is_restarted_by_the_next_operation(relay: Relay) -> None:
    relay.write_bytes("a", b"before")
    os.kill(rcd_pid(relay), signal.SIGKILL)
    time.sleep(0.2)
    relay.write_bytes("b", b"after")
    assert relay.list() == ["a", "b"] and relay.read_bytes("a") == b"before"


def test_the_daemon_dies_with_the_process_that_started_it(
    rclone_conf: Path, tmp_path: Path
) -> None:
    script = (
        "import os, sys, time\n"
        "from escale_core.address import parse_relay_url\n"
        "from escale_core.plugins import get_plugins\n"
        "from escale_core.relay import open_relay\n"
        f"r = open_relay(parse_relay_url('rclone://disk/{tmp_path}/repo'), get_plugins().relays,"
        f" config='{rclone_conf}')\n"
        "r.list(); print(r.daemon.process.pid, flush=True); os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "rclone rcd outlived the process that started it"


# -- errors --------------------------------------------------------------------------------


def test_a_remote_missing_from_the_configuration_is_named_with_rclone_config(
    plugins: Plugins, rclone_conf: Path
) -> None:
    relay = opener(plugins, "rclone://nowhere/repo", config=str(rclone_conf))()
    try:
        with pytest.raises(RelayError) as caught:
            relay.list()
        message = str(caught.value)
        assert "'nowhere'" in message and "rclone config" in message and "\n" not in message
    finally:
        relay.close()


def test_a_missing_rclone_program_is_one_line_with_an_install_hint(plugins: Plugins) -> None:
    with pytest.raises(MissingDependencyError, match=r"apt install rclone.*rclone.org/install"):
        opener(plugins, "rclone://disk/repo", rclone_binary="/nonexistent/rclone")()


def test_unknown_relay_options_are_refused_naming_them(plugins: Plugins) -> None:
    with pytest.raises(ConfigError, match=r"unknown colour.*remote, config, rclone_binary, flags"):
        opener(plugins, "rclone://disk/repo", colour="blue")()


def test_reading_a_missing_object_is_not_found(relay: Relay) -> None:
    with pytest.raises(RelayNotFoundError):
        relay.read_bytes("never/written")
    assert relay.modified("never/written") is None and not relay.exists("never/written")


def test_a_failed_write_leaves_no_object_and_no_temporary(relay: Relay) -> None:
    def failing() -> Iterator[bytes]:
        yield b"x" * 1000
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError):
        relay.write_stream("data/a", failing())
    assert relay.list() == [] and relay.temp_objects() == []


def test_objects_land_as_plain_files_of_the_remote(relay: Relay, tmp_path: Path) -> None:
    relay.write_bytes("updates/c1/0000000001", b"hello")
    assert (tmp_path / "repo/updates/c1/0000000001").read_bytes() == b"hello"
    assert relay.modified("updates/c1/0000000001") == pytest.approx(time.time(), abs=60)


# -- real escale processes -----------------------------------------------------------------


def test_three_clients_converge_through_an_rclone_remote(
    rclone_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    """The network suite's end-to-end test (three escale processes, a 100 MiB file, edits and
    deletions), through rclone rcd and an ``rclone serve webdav`` server."""
    network.test_three_clients_converge_through_a_network_relay(
        rclone_server, tmp_path, isolated_env
    )


def test_a_round_stopped_midway_through_an_rclone_remote_is_abandoned_and_then_completes(
    rclone_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    network.test_a_round_stopped_midway_over_a_network_relay_is_abandoned_and_then_completes(
        rclone_server, tmp_path, isolated_env
    )


def test_a_wrong_relay_option_names_the_file_and_section_and_exits_2(
    escale: Any, write_config: Any
) -> None:
    config = write_config(
        """
        [photos]
        path = "{tmp}/photos"
        relay = "rclone://disk/repo"
        encryption = "plain"
        [photos.relay_options]
        flags = "--fast-list"
        """
    )
    run = escale("-c", str(config), "sync", "photos")
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"escale: error: {config}: [photos] relay_options.flags: must be a list of strings; "
        'e.g. flags = ["--fast-list"]'
    )
