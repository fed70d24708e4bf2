"""The SFTP relay against a real OpenSSH sshd."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from escale_core.address import parse_relay_url
from escale_core.plugins import Plugins
from escale_core.relay import open_relay
from escale_core.testing import OpenRelay, RelayConformance

from .conftest import RunEscale
from .servers import RelayServer


class TestSftpConformance(RelayConformance):
    @pytest.fixture
    def open_relay(self, sftp_server: RelayServer, plugins: Plugins) -> OpenRelay:
        address = parse_relay_url(sftp_server.url(f"conf-{uuid.uuid4().hex[:8]}"))
        options: dict[str, Any] = dict(sftp_server.relay_options)
        return lambda: open_relay(address, plugins.relays, **options)


def test_a_key_the_server_refuses_is_one_line_exit_1(
    escale: RunEscale, sftp_server: RelayServer, tmp_path: Path
) -> None:
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other_key")],
        check=True,
    )
    config = tmp_path / "c.toml"
    config.write_text(
        f'[s]\npath = "{tmp_path}/A"\nrelay = "{sftp_server.url("x")}"\n'
        f'encryption = "plain"\n[s.relay_options]\n'
        f'client_keys = ["{tmp_path / "other_key"}"]\nknown_hosts = "none"\n'
    )
    run = escale("-c", str(config), "sync", "s")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(run.error_lines) == 1 and "login refused" in run.stderr
