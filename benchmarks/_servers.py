"""W5's network relays: the WebDAV and SFTP test servers of ``tests/servers`` on 127.0.0.1.

They start as :mod:`benchmarks.relays` starts them; each run gets its own repository folder on
the server (``server.url(folder)``) and the section options the server asks for.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _measure import Sample, measure
from _tools import RCLONE, RunDirs, Tool, crypt_env, escale_through, rclone_obscured, toml_value

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("webdav", "sftp")


def start(backend: str, base: Path) -> Any:
    """Start one test server (a ``tests.servers.RelayServer``) with its files under ``base``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    base.mkdir(parents=True)
    if backend == "webdav":
        from tests.servers.webdav import start_webdav

        return start_webdav(base / "dav-root", base)
    from tests.servers.sftp import start_sftp

    return start_sftp(base)


def section_extra(server: Any) -> str:
    """The TOML lines a section needs for this server: credentials and ``relay_options``."""
    lines = [server.config] if server.config else []
    if server.relay_options:
        lines.append("[s.relay_options]")
        lines += [f"{key} = {toml_value(value)}" for key, value in server.relay_options.items()]
    return "".join(line + "\n" for line in lines)


def escale_tool(backend: str, server: Any) -> Tool:
    """escale push and pull through ``server``, a fresh repository folder per run."""

    def relay(dirs: RunDirs) -> str:
        return str(server.url(f"bench-{dirs.work.name}-{uuid.uuid4().hex[:8]}"))

    return Tool(f"escale {backend}", transfer=escale_through(relay, section_extra(server)))


def rclone_remote(backend: str, server: Any) -> dict[str, str]:
    """Environment defining the rclone remote ``benchnet:`` as the same server escale uses."""
    url = urlsplit(server.url_prefix)
    prefix = "RCLONE_CONFIG_BENCHNET_"
    if backend == "webdav":
        from tests.servers.webdav import PASSWORD

        return {
            f"{prefix}TYPE": "webdav",
            f"{prefix}URL": f"http://{url.hostname}:{url.port}{url.path}",
            f"{prefix}VENDOR": "other",
            f"{prefix}USER": str(url.username),
            f"{prefix}PASS": rclone_obscured(PASSWORD),
        }
    from tests.servers.sftp import PASSWORD as SFTP_PASSWORD

    keys = server.relay_options.get("client_keys") or []
    auth = (
        {f"{prefix}KEY_FILE": str(keys[0])}
        if keys
        else {f"{prefix}PASS": rclone_obscured(SFTP_PASSWORD)}
    )
    return {
        f"{prefix}TYPE": "sftp",
        f"{prefix}HOST": str(url.hostname),
        f"{prefix}PORT": str(url.port),
        f"{prefix}USER": str(url.username),
        **auth,
    }


def rclone_crypt_tool(backend: str, server: Any) -> Tool:
    """rclone copy A → crypt remote over the server → B, a fresh folder per run."""
    path = urlsplit(server.url_prefix).path if backend == "sftp" else ""

    def transfer(dirs: RunDirs) -> Sample:
        folder = f"bench-rclone-{dirs.work.name}-{uuid.uuid4().hex[:8]}"
        env = {
            **crypt_env(f"benchnet:{path}/{folder}".replace("//", "/")),
            **rclone_remote(backend, server),
        }
        first = measure([*RCLONE, "copy", dirs.a, "benchcrypt:"], env=env)
        return first + measure([*RCLONE, "copy", "benchcrypt:", dirs.b], env=env)

    return Tool(f"rclone-crypt {backend}", "rclone", transfer=transfer)


@contextlib.contextmanager
def network_tools(base: Path, notes: list[str], rclone: bool) -> Iterator[list[Tool]]:
    """Start every backend that can start; yield their escale tools; stop them at the end.

    A server that cannot start (missing package or daemon) adds a note instead of a tool.
    With ``rclone``, rclone through a crypt remote over the same server runs beside escale.
    """
    servers: list[Any] = []
    tools: list[Tool] = []
    try:
        for backend in BACKENDS:
            try:
                server = start(backend, base / f"server-{backend}")
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # tests.servers skips with pytest's BaseException
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                notes.append(f"W5 {backend}: skipped, the test server did not start ({reason}).")
                continue
            servers.append(server)
            tools.append(escale_tool(backend, server))
            if rclone:
                tools.append(rclone_crypt_tool(backend, server))
        yield tools
    finally:
        for server in servers:
            server.server.stop()
