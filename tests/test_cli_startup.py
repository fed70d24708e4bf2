"""The command line's start: a command imports what it needs when it needs it (issue 14).

``escale --version`` and a plain ``escale sync`` do not import typer (they are parsed by
:mod:`escale_core.cli.main`, as typer would parse them); ``--version`` loads no plugin and none
of the sync machinery; a core command's help loads no plugin; the command list
(``escale --help``) and plugins' commands do.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from escale_core.cli import rounds
from escale_core.cli.app import command_names, core_app, wants_plugin_commands
from escale_core.cli.main import SyncRequest, parse_plain_sync

#: What ``escale --version`` must never import: the engine and its cryptography, the plugin
#: machinery, and the libraries only some commands use.
HEAVY = [
    "escale_core.engine",
    "escale_core.crypto",
    "cryptography",
    "importlib.metadata",
    "pluggy",
    "pathspec",
    "tomlkit",
    "sqlite3",
]

#: Modules of built-in plugins (and the backend one of them imports).
PLUGIN_MODULES = ["escale_relay_webdav", "escale_relay_fsspec", "escale_cipher_aes", "fsspec"]


#: Runs ``escale ARGS`` as ``python -m escale_core`` does, then prints the imported modules
#: (at exit: the commands end with SystemExit). ``sys.modules`` rather than ``-X importtime``,
#: whose output leaves out the built-in plugins as the plugin manager imports them.
_SHOW_MODULES = """
import atexit, runpy, sys
atexit.register(lambda: print(*sorted(sys.modules), sep="\\n", file=sys.stderr))
sys.argv = ["escale", *sys.argv[1:]]
runpy.run_module("escale_core", run_name="__main__", alter_sys=True)
"""


def imported(env: dict[str, str], *args: str) -> set[str]:
    """The modules that ``python -m escale_core ARGS`` imports."""
    run = subprocess.run(
        [sys.executable, "-c", _SHOW_MODULES, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    return set(run.stderr.split())


def _loaded(modules: set[str], names: list[str]) -> list[str]:
    """Which of ``names`` (or their submodules) are among ``modules``."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_version_imports_neither_typer_nor_plugins_nor_the_engine(
    isolated_env: dict[str, str],
) -> None:
    modules = imported(isolated_env, "--version")
    assert "escale_core.cli.main" in modules  # the parse above reads real output
    assert _loaded(modules, ["typer", *HEAVY, *PLUGIN_MODULES]) == []


def test_a_plain_sync_runs_without_importing_typer(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("a")
    (tmp_path / "key").write_text("a passphrase for the start-up test\n")
    config = tmp_path / "escale.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[s]\npath = "{tmp_path / "folder"}"\n'
        f'relay = "{tmp_path / "relay"}"\nclient = "a"\npassphrase_file = "{tmp_path / "key"}"\n'
    )
    modules = imported(isolated_env, "-c", str(config), "-q", "sync", "s")
    assert "escale_core.engine" in modules and (tmp_path / "relay" / "escale.json").exists()
    assert _loaded(modules, ["typer"]) == []
    modules = imported(isolated_env, "-c", str(config), "sync", "s", "--watch", "--help")
    assert "typer" in modules  # any other form is typer's


def test_a_core_commands_help_loads_no_plugin(isolated_env: dict[str, str]) -> None:
    for args in (["sync", "--help"], ["-v", "plugins", "--help"]):
        modules = imported(isolated_env, *args)
        assert _loaded(modules, HEAVY + PLUGIN_MODULES) == [], args


def test_the_command_list_loads_the_plugins(isolated_env: dict[str, str]) -> None:
    # plugins may add commands: the list shows them, so it loads every plugin
    modules = imported(isolated_env, "--help")
    assert {"pluggy", "escale_relay_webdav"} <= modules


def test_core_command_names_come_from_the_app() -> None:
    names = command_names(core_app())
    assert {"sync", "daemon-run", "backup", "restore", "plugins", "config"} <= names
    assert "backup-" not in names and "hello" not in names


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["--version"], False),
        (["sync", "--all"], False),
        (["-c", "hello", "--version"], False),  # hello is the configuration file
        (["-vc", "escale.toml", "status"], False),
        (["--config=hello", "plugins", "list"], False),
        (["-chello", "sync"], False),
        (["-q", "--", "sync"], False),
        (["hello"], True),
        (["-v", "--config", "x.toml", "hello", "--name", "sync"], True),
        ([], True),
        (["-q"], True),
        (["--help"], True),
        (["--version", "-h"], True),
        (["frobnicate"], True),  # perhaps a plugin's: the error lists every command
    ],
)
def test_plugin_commands_are_wanted_only_when_a_command_could_be_one(
    args: list[str], wanted: bool
) -> None:
    assert wants_plugin_commands({"sync", "status", "plugins"}, args) is wanted


def typer_request(args: list[str], monkeypatch: pytest.MonkeyPatch) -> Optional[SyncRequest]:
    """What typer hands to :func:`rounds.sync_once` for ``args`` (None: it did not call it)."""
    seen: list[SyncRequest] = []

    def record(request: SyncRequest) -> int:
        seen.append(request)
        return 0

    monkeypatch.setattr(rounds, "sync_once", record)
    with contextlib.suppress(SystemExit):
        core_app()(args=args, prog_name="escale")
    return seen[0] if seen else None


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "s"],
        ["-c", "x.toml", "sync", "s", "t"],
        ["--config", "x.toml", "-q", "sync", "--json", "s"],
        ["--config=x.toml", "-vv", "sync", "--force", "-n", "s"],
        ["-v", "--verbose", "sync", "--all"],
        ["-q", "-v", "sync", "s", "--dry-run"],
        ["sync"],
    ],
)
def test_a_plain_sync_is_read_as_typer_reads_it(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = parse_plain_sync(args)
    assert plain is not None
    assert plain == typer_request(args, monkeypatch)


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "--watch", "s"],
        ["sync", "--help"],
        ["-vc", "x.toml", "sync", "s"],
        ["-c", "sync"],
        ["-c", "-q", "sync", "s"],
        ["--", "sync", "s"],
        ["sync", "--", "s"],
        ["sync", "--jsn", "s"],
        ["status", "s"],
        ["--version"],
        [],
    ],
)
def test_any_other_command_line_is_left_to_typer(args: list[str]) -> None:
    assert parse_plain_sync(args) is None
