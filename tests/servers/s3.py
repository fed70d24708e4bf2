"""moto's S3 server as a separate process (fixtures ``s3_server``, ``s3_server_own``)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import RelayServer, ServerProcess, free_port

KEY, SECRET = "escale-test-key", "escale-test-secret"


def start_s3(log: Path) -> RelayServer:
    """Start moto's server and create a fresh bucket."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("s3fs") is None:
        pytest.skip("moto[server] or s3fs is not installed (pip install -e '.[test]')")
    port = free_port()
    command = [shutil.which("moto_server") or sys.executable, "-H", "127.0.0.1", "-p", str(port)]
    if not shutil.which("moto_server"):
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = ServerProcess(command, port, log).start()
    endpoint = f"http://127.0.0.1:{port}"
    bucket = f"escale-{uuid.uuid4().hex[:12]}"
    from s3fs import S3FileSystem

    S3FileSystem(key=KEY, secret=SECRET, endpoint_url=endpoint, skip_instance_cache=True).mkdir(
        bucket
    )
    return RelayServer(
        "s3",
        server,
        f"s3://{bucket}",
        relay_options={"endpoint_url": endpoint, "key": KEY, "secret": SECRET},
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One S3 server (moto) for the session, with one bucket."""
    server = start_s3(tmp_path_factory.mktemp("s3") / "server.log")
    yield server
    server.server.stop()


@pytest.fixture
def s3_server_own(tmp_path: Path) -> Iterator[RelayServer]:
    """A private S3 server (moto keeps objects in memory: a restart loses them)."""
    server = start_s3(tmp_path / "s3.log")
    yield server
    server.server.stop()
