"""The FTP relay against a real pyftpdlib server."""

from __future__ import annotations

import uuid

import pytest

from escale_core.address import parse_relay_url
from escale_core.plugins import Plugins
from escale_core.relay import open_relay
from escale_core.testing import OpenRelay, RelayConformance

from .servers import RelayServer
from .servers.ftp import PASSWORD


class TestFtpConformance(RelayConformance):
    @pytest.fixture
    def open_relay(self, ftp_server: RelayServer, plugins: Plugins) -> OpenRelay:
        address = parse_relay_url(ftp_server.url(f"conf-{uuid.uuid4().hex[:8]}"))
        return lambda: open_relay(address, plugins.relays, password=PASSWORD)
