"""A WsgiDAV server as a separate process (fixtures ``webdav_server``, ``webdav_server_own``)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import RelayServer, ServerProcess, free_port

USER, PASSWORD = "relay", "dav-secret-123"


def start_webdav(root: Path, base: Path, port: int = 0) -> RelayServer:
    """Start WsgiDAV serving ``root`` to ``relay``/PASSWORD (basic auth)."""
    if importlib.util.find_spec("wsgidav") is None or importlib.util.find_spec("webdav4") is None:
        pytest.skip("wsgidav or webdav4 is not installed (pip install -e '.[test]')")
    port = port or free_port()
    config = base / "wsgidav.json"
    config.write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "port": port,
                "provider_mapping": {"/": str(root)},
                "simple_dc": {"user_mapping": {"*": {USER: {"password": PASSWORD}}}},
                "http_authenticator": {
                    "accept_basic": True,
                    "accept_digest": False,
                    "default_to_digest": False,
                },
                "dir_browser": {"enable": False},
                "verbose": 1,
                "logging": {"enable": False},
            }
        )
    )
    command = [shutil.which("wsgidav") or "wsgidav", "-c", str(config)]
    if not shutil.which("wsgidav"):
        command = [sys.executable, "-m", "wsgidav.server.server_cli", "-c", str(config)]
    server = ServerProcess(command, port, base / "wsgidav.log").start()
    return RelayServer(
        "webdav", server, f"webdav://{USER}@127.0.0.1:{port}", config=f'password = "{PASSWORD}"'
    )


@pytest.fixture(scope="session")
def webdav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One WebDAV server for the session."""
    base = tmp_path_factory.mktemp("webdav")
    (base / "root").mkdir()
    server = start_webdav(base / "root", base)
    yield server
    server.server.stop()


@pytest.fixture
def webdav_server_own(tmp_path: Path) -> Iterator[RelayServer]:
    """A private WebDAV server that a test may kill and restart."""
    (tmp_path / "dav-root").mkdir()
    server = start_webdav(tmp_path / "dav-root", tmp_path)
    yield server
    server.server.stop()
