"""The S3 relay against a real S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from escale_core.address import parse_relay_url
from escale_core.errors import RelayNotFoundError
from escale_core.plugins import Plugins
from escale_core.relay import open_relay
from escale_core.testing import OpenRelay, RelayConformance

from .conftest import RunEscale
from .servers import RelayServer


class TestS3Conformance(RelayConformance):
    @pytest.fixture
    def open_relay(self, s3_server: RelayServer, plugins: Plugins) -> OpenRelay:
        address = parse_relay_url(s3_server.url(f"conf-{uuid.uuid4().hex[:8]}"))
        options: dict[str, Any] = dict(s3_server.relay_options)
        return lambda: open_relay(address, plugins.relays, **options)


def test_a_missing_bucket_is_named(s3_server: RelayServer, plugins: Plugins) -> None:
    address = parse_relay_url("s3://no-such-bucket-here/x")
    with pytest.raises(RelayNotFoundError, match="bucket 'no-such-bucket-here' does not exist"):
        open_relay(address, plugins.relays, **s3_server.relay_options)


def test_sync_to_a_missing_bucket_is_one_line_exit_1(
    escale: RunEscale, s3_server: RelayServer, tmp_path: Path
) -> None:
    options = "".join(f'{k} = "{v}"\n' for k, v in s3_server.relay_options.items())
    config = tmp_path / "c.toml"
    config.write_text(
        f'[s]\npath = "{tmp_path}/A"\nrelay = "s3://no-such-bucket-here/x"\n'
        f'encryption = "plain"\n[s.relay_options]\n{options}'
    )
    run = escale("-c", str(config), "sync", "s")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(run.error_lines) == 1 and "no-such-bucket-here" in run.stderr
