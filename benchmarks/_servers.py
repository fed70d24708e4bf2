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

from _tools import RunDirs, Tool, escale_through, toml_value

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


@contextlib.contextmanager
def network_tools(base: Path, notes: list[str]) -> Iterator[list[Tool]]:
    """Start every backend that can start; yield their escale tools; stop them at the end.

    A server that cannot start (missing package or daemon) adds a note instead of a tool.
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
        yield tools
    finally:
        for server in servers:
            server.server.stop()
