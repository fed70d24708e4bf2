"""WsgiDAV servers as separate processes: fixtures ``webdav_server`` (one per session),
``webdav_server_own`` (private, for tests that kill and restart it) and ``webdavs_server``
(HTTPS with a self-signed certificate)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from . import RelayServer, ServerProcess, on_free_port, self_signed_certificate

USER, PASSWORD = "relay", "dav-secret-123"
#: Repositories live under this folder of the server (url_prefix ends with it).
BASE = "repos"


def wsgidav_command(config: Path) -> list[str]:
    """The ``wsgidav`` command line (the venv's script, else the module)."""
    if importlib.util.find_spec("wsgidav") is None or importlib.util.find_spec("webdav4") is None:
        pytest.skip("wsgidav or webdav4 is not installed (pip install -e '.[test]')")
    script = Path(sys.executable).with_name("wsgidav")
    if script.exists():
        return [str(script), "-c", str(config)]
    found = shutil.which("wsgidav")
    if found:
        return [found, "-c", str(config)]
    return [sys.executable, "-m", "wsgidav.server.server_cli", "-c", str(config)]


def start_webdav(root: Path, base: Path, *, tls: Optional[tuple[Path, Path]] = None) -> RelayServer:
    """Start WsgiDAV serving ``root`` to USER/PASSWORD (basic auth) on a free port.

    :param root: the folder served (repositories end up in ``root/BASE``).
    :param base: where the configuration and the log go.
    :param tls: (certificate, private key) to serve HTTPS (``webdavs://``).
    """
    (root / BASE).mkdir(parents=True, exist_ok=True)

    def start(port: int) -> ServerProcess:
        config: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "provider_mapping": {"/": str(root)},
            "simple_dc": {"user_mapping": {"*": {USER: {"password": PASSWORD}}}},
            "http_authenticator": {
                "accept_basic": True,
                "accept_digest": True,  # for relay_options auth = "digest"
                "default_to_digest": True,  # challenge with digest; basic is sent unasked
            },
            "dir_browser": {"enable": False},
            "verbose": 1,
            "logging": {"enable": False},
        }
        if tls is not None:
            config.update(ssl_certificate=str(tls[0]), ssl_private_key=str(tls[1]))
        path = base / "wsgidav.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        return ServerProcess(wsgidav_command(path), port, base / "wsgidav.log").start()

    server = on_free_port(start)
    port = server.port
    scheme = "webdavs" if tls else "webdav"
    return RelayServer(
        scheme,
        server,
        f"{scheme}://{USER}@127.0.0.1:{port}/{BASE}",
        config=f'password = "{PASSWORD}"',
        relay_options={"verify": str(tls[0])} if tls else {},
        files=root / BASE,
    )


@pytest.fixture(scope="session")
def webdav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One WebDAV server for the session; ``server.url(folder)`` is a repository folder."""
    base = tmp_path_factory.mktemp("webdav")
    server = start_webdav(base / "root", base)
    yield server
    server.server.stop()


@pytest.fixture
def webdav_server_own(tmp_path: Path) -> Iterator[RelayServer]:
    """A private WebDAV server that a test may kill and restart (same port, same folder).
    Its served folder is ``tmp_path / "dav-root"``."""
    base = tmp_path / "dav-server"
    base.mkdir()
    server = start_webdav(tmp_path / "dav-root", base)
    yield server
    server.server.stop()


@pytest.fixture(scope="session")
def webdavs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """A WebDAV server over HTTPS with a self-signed certificate for 127.0.0.1;
    ``relay_options`` holds ``verify`` = the certificate (the client's CA bundle)."""
    base = tmp_path_factory.mktemp("webdavs")
    server = start_webdav(base / "root", base, tls=self_signed_certificate(base))
    yield server
    server.server.stop()
