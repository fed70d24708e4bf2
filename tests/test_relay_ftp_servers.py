"""The FTP relay against the servers users run: vsftpd and ProFTPD, plain and explicit TLS."""

from __future__ import annotations

import uuid

import pytest

from escale_core.address import parse_relay_url
from escale_core.plugins import Plugins
from escale_core.relay import open_relay
from escale_core.testing import OpenRelay, RelayConformance

from .servers import RelayServer
from .servers.ftp import PASSWORD

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
