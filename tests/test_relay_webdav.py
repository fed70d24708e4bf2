"""The WebDAV relay against a real WsgiDAV server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from escale_core.address import parse_relay_url
from escale_core.plugins import Plugins
from escale_core.relay import open_relay
from escale_core.testing import OpenRelay, RelayConformance

from .conftest import RunEscale
from .servers import RelayServer
from .servers.webdav import PASSWORD


class TestWebdavConformance(RelayConformance):
    @pytest.fixture
    def open_relay(self, webdav_server: RelayServer, plugins: Plugins) -> OpenRelay:
        address = parse_relay_url(webdav_server.url(f"conf-{uuid.uuid4().hex[:8]}"))
        return lambda: open_relay(address, plugins.relays, password=PASSWORD)


def test_a_wrong_password_is_one_line_exit_1(
    escale: RunEscale, webdav_server: RelayServer, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[s]\npath = "{tmp_path}/A"\nrelay = "{webdav_server.url("x")}"\n'
        'encryption = "plain"\npassword = "wrong"\n'
    )
    run = escale("-c", str(config), "sync", "s")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(run.error_lines) == 1 and "access refused" in run.stderr
