"""Shared fixtures: run the real ``escale`` command in an isolated environment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

from escale_core.plugins import get_plugins, reset_plugins

from .clients import Cluster

# Real servers for the network relays, as fixtures: webdav_server, ftp_server, sftp_server,
# s3_server (session-scoped, free ports, stopped by PID).
pytest_plugins = [
    "tests.servers.webdav",
    "tests.servers.apache",
    "tests.servers.ftp",
    "tests.servers.sftp",
    "tests.servers.s3",
    "tests.servers.rclone",
]


@dataclass
class Run:
    """The outcome of one ``escale`` process."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


RunEscale = Callable[..., Run]


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """An environment with its own HOME, config and state folders, and no ESCALE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESCALE_", "XDG_"))}
    home = tmp_path / "home"
    home.mkdir()
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@pytest.fixture
def escale(isolated_env: dict[str, str]) -> RunEscale:
    """Run ``python -m escale_core ARGS`` as a separate process; return its outcome."""

    def run(*args: str, env: Optional[dict[str, str]] = None, timeout: float = 60) -> Run:
        full_env = {**isolated_env, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "escale_core", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a TOML configuration (dedented; ``{tmp}`` is replaced by the test folder)."""

    def write(text: str, name: str = "escale.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).replace("{tmp}", str(tmp_path)), encoding="utf-8")
        return path

    return write


def make_plugin_dist(
    site: Path, dist: str, version: str, module: str, source: str, entry_name: Optional[str] = None
) -> None:
    """Install a plugin distribution by hand into ``site``: a module and its dist-info.

    ``importlib.metadata`` finds it like any pip-installed package once ``site`` is on the path.
    """
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[escale]\n{entry_name or module} = {module}\n", encoding="utf-8"
    )
    (info / "RECORD").write_text("", encoding="utf-8")


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    """Reload plugins before and after a test that changes the environment they see."""
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture(scope="session")
def plugins() -> object:
    """The built-in plugins, loaded once."""
    return get_plugins()


@pytest.fixture
def cluster(tmp_path: Path, isolated_env: dict[str, str]) -> Cluster:
    """Clients sharing a ``file://`` relay in the test folder."""
    relay = tmp_path / "relay"
    return Cluster(tmp_path / "clients", f"file://{relay}", isolated_env)
