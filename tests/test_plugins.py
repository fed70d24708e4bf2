"""The plugin manager: entry points, built-ins, conflicts, broken plugins, enable/disable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from escale_core.plugins import BUILTIN_PLUGINS, Plugins

from .conftest import RunEscale, make_plugin_dist

RELAY_PLUGIN = """
from escale_core import hookimpl

@hookimpl
def register_relays(register):
    register("{scheme}", "escale_relay_fsspec.relay:FsspecRelay", description="test relay")
"""


def _listing(run_escale: RunEscale, site: Path, *args: str, **env: str) -> list[dict]:
    run = run_escale("plugins", "list", "--json", *args, env={"PYTHONPATH": str(site), **env})
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_all_json_lists_the_builtin_relays_ciphers_and_checksums(escale: RunEscale) -> None:
    run = escale("plugins", "list", "--all", "--json")
    assert run.returncode == 0, run.stderr
    infos = json.loads(run.stdout)
    assert {i["name"] for i in infos} >= set(BUILTIN_PLUGINS) - {
        "escale_checksum_blake3",
        "escale_checksum_xxhash",
    }
    for info in infos:
        assert {"name", "version", "builtin", "hooks", "provides"} <= set(info)
        assert set(info["provides"]) >= {"relays", "ciphers", "checksums"}
    relays = {r for i in infos for r in i["provides"]["relays"]}
    ciphers = {c for i in infos for c in i["provides"]["ciphers"]}
    checksums = {c for i in infos for c in i["provides"]["checksums"]}
    assert {"file", "webdav", "webdavs", "sftp", "ftp", "ftps", "s3", "gdrive", "rclone"} <= relays
    # only storage that can keep a repository is offered (memory:// stays for the Python API)
    assert not relays & {"memory", "zip", "tar", "github", "git", "http", "https", "cached"}
    assert ciphers == {"aes-256-gcm", "chacha20-poly1305", "fernet", "plain"}
    assert {"sha256", "blake2b", "sha512"} <= checksums
    assert all(i["builtin"] for i in infos)


def test_blake3_and_xxh3_are_registered_when_installed(plugins: Plugins) -> None:
    pytest.importorskip("blake3")
    pytest.importorskip("xxhash")
    assert "blake3" in plugins.checksums and "xxh3-128" in plugins.checksums


def test_without_all_only_external_plugins_are_listed(escale: RunEscale, tmp_path: Path) -> None:
    assert json.loads(escale("plugins", "list", "--json").stdout) == []
    make_plugin_dist(
        tmp_path, "escale-relay-foo", "1.2.3", "escale_relay_foo", RELAY_PLUGIN.format(scheme="foo")
    )
    infos = _listing(escale, tmp_path)
    assert infos == [
        {
            "name": "escale_relay_foo",
            "version": "1.2.3",
            "builtin": False,
            "module": "escale_relay_foo",
            "distribution": "escale-relay-foo",
            "hooks": ["register_relays"],
            "provides": {"relays": ["foo"], "ciphers": [], "checksums": [], "commands": []},
            "untested": {},
            "verified": {},
        }
    ]


def test_table_shows_name_version_and_what_a_plugin_provides(
    escale: RunEscale, tmp_path: Path
) -> None:
    make_plugin_dist(
        tmp_path, "escale-relay-foo", "1.2.3", "escale_relay_foo", RELAY_PLUGIN.format(scheme="foo")
    )
    run = escale("plugins", "list", env={"PYTHONPATH": str(tmp_path)})
    header, row = run.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "TYPE", "HOOKS", "PROVIDES"]
    assert row.split()[:4] == ["escale_relay_foo", "1.2.3", "external", "register_relays"]
    assert row.endswith("relays: foo")


NOTED_PLUGIN = """
from escale_core import hookimpl

@hookimpl
def register_relays(register):
    register("foo", "escale_relay_fsspec.relay:FsspecRelay", verified=("FooServer 2",))
    register("bar", "escale_relay_fsspec.relay:FsspecRelay", verified=["FooServer 2"],
             untested="bar's cloud needs an account")
"""


def test_a_relay_says_what_it_was_verified_against_and_what_not_in_plugins_list(
    escale: RunEscale, tmp_path: Path
) -> None:
    make_plugin_dist(tmp_path, "escale-relay-foo", "1", "escale_relay_foo", NOTED_PLUGIN)
    run = escale("plugins", "list", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[1].endswith("relays: bar*, foo")
    assert lines[2:] == [
        "",
        "relays verified against:",
        "  bar, foo: FooServer 2",
        "",
        "* not tested here:",
        "  bar: bar's cloud needs an account",
    ]
    (info,) = _listing(escale, tmp_path)
    assert info["verified"] == {"bar": ["FooServer 2"], "foo": ["FooServer 2"]}
    assert info["untested"] == {"bar": "bar's cloud needs an account"}


@pytest.mark.parametrize(
    "option", ["verified=[1]", "verified={'a': 1}", "untested=True", "verified=None"]
)
def test_a_relay_note_of_the_wrong_type_is_refused_naming_the_plugin(
    escale: RunEscale, tmp_path: Path, option: str
) -> None:
    source = NOTED_PLUGIN.split("    register(")[0]
    source += f'    register("foo", "escale_relay_fsspec.relay:FsspecRelay", {option})\n'
    make_plugin_dist(tmp_path, "escale-relay-foo", "1", "escale_relay_foo", source)
    run = escale("plugins", "list", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2 and len(run.error_lines) == 1, run.stderr
    assert "plugin 'escale_relay_foo'" in run.stderr and "relay 'foo'" in run.stderr


def test_two_plugins_claiming_one_scheme_is_an_error_naming_both(
    escale: RunEscale, tmp_path: Path
) -> None:
    make_plugin_dist(
        tmp_path,
        "escale-relay-file2",
        "0.1",
        "escale_relay_file2",
        RELAY_PLUGIN.format(scheme="file"),
    )
    run = escale("plugins", "list", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2
    assert len(run.error_lines) == 1
    assert "relay 'file'" in run.stderr
    assert "'escale_relay_fsspec'" in run.stderr and "'escale_relay_file2'" in run.stderr


def test_two_external_plugins_claiming_one_cipher_name_both(
    escale: RunEscale, tmp_path: Path
) -> None:
    source = """
    from escale_core import hookimpl
    @hookimpl
    def register_ciphers(register):
        register("rot13", "escale_cipher_plain:Plain")
    """
    make_plugin_dist(tmp_path, "escale-a", "1", "escale_a", source)
    make_plugin_dist(tmp_path, "escale-b", "1", "escale_b", source)
    run = escale("plugins", "list", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2
    assert (
        "cipher 'rot13'" in run.stderr and "'escale_a'" in run.stderr and "'escale_b'" in run.stderr
    )


def test_plugin_that_fails_to_import_warns_and_escale_still_runs(
    escale: RunEscale, tmp_path: Path
) -> None:
    make_plugin_dist(
        tmp_path, "escale-broken", "0.1", "escale_broken", "import does_not_exist_anywhere\n"
    )
    run = escale("plugins", "list", "--all", "--json", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 0
    assert run.error_lines == [
        "escale: warning: plugin 'escale_broken' (escale-broken) failed to import and is "
        "skipped: ModuleNotFoundError: No module named 'does_not_exist_anywhere'"
    ]
    assert "escale_broken" not in {i["name"] for i in json.loads(run.stdout)}


def test_misspelt_hook_fails_fast_naming_the_plugin(escale: RunEscale, tmp_path: Path) -> None:
    source = """
    from escale_core import hookimpl
    @hookimpl
    def register_relay(register):
        pass
    """
    make_plugin_dist(tmp_path, "escale-typo", "0.1", "escale_typo", source)
    run = escale("plugins", "list", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2
    assert len(run.error_lines) == 1
    assert "plugin 'escale_typo' is invalid" in run.stderr and "register_relay" in run.stderr


def test_hook_with_wrong_arguments_fails_naming_the_plugin(
    escale: RunEscale, tmp_path: Path
) -> None:
    source = """
    from escale_core import hookimpl
    @hookimpl
    def register_relays(register, extra):
        pass
    """
    make_plugin_dist(tmp_path, "escale-args", "0.1", "escale_args", source)
    run = escale("plugins", "list", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2 and "escale_args" in run.stderr and "Traceback" not in run.stderr


def test_hook_that_raises_is_an_error_naming_the_plugin(escale: RunEscale, tmp_path: Path) -> None:
    source = """
    from escale_core import hookimpl
    @hookimpl
    def register_checksums(register):
        raise RuntimeError("boom")
    """
    make_plugin_dist(tmp_path, "escale-boom", "0.1", "escale_boom", source)
    run = escale("plugins", "list", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2
    assert run.error_lines == [
        "escale: error: plugin 'escale_boom' failed in register_checksums: RuntimeError: boom"
    ]


def test_invalid_registered_name_is_refused(escale: RunEscale, tmp_path: Path) -> None:
    make_plugin_dist(
        tmp_path, "escale-bad", "0.1", "escale_bad", RELAY_PLUGIN.format(scheme="Bad Name")
    )
    run = escale("plugins", "list", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 2 and "invalid relay name 'Bad Name'" in run.stderr


def test_disable_plugins_hides_external_and_builtin_plugins(
    escale: RunEscale, tmp_path: Path
) -> None:
    make_plugin_dist(
        tmp_path, "escale-relay-foo", "1.0", "escale_relay_foo", RELAY_PLUGIN.format(scheme="foo")
    )
    names = {
        i["name"]
        for i in _listing(
            escale,
            tmp_path,
            "--all",
            ESCALE_DISABLE_PLUGINS="escale_relay_foo, escale_cipher_fernet",
        )
    }
    assert "escale_relay_foo" not in names and "escale_cipher_fernet" not in names
    assert "escale_cipher_aes" in names
    # the distribution name works too
    assert _listing(escale, tmp_path, ESCALE_DISABLE_PLUGINS="escale-relay-foo") == []


def test_load_plugins_loads_only_the_listed_external_plugins(
    escale: RunEscale, tmp_path: Path
) -> None:
    make_plugin_dist(
        tmp_path, "escale-relay-foo", "1.0", "escale_relay_foo", RELAY_PLUGIN.format(scheme="foo")
    )
    make_plugin_dist(
        tmp_path, "escale-relay-bar", "1.0", "escale_relay_bar", RELAY_PLUGIN.format(scheme="bar")
    )
    assert [i["name"] for i in _listing(escale, tmp_path)] == [
        "escale_relay_bar",
        "escale_relay_foo",
    ]
    only = _listing(escale, tmp_path, "--all", ESCALE_LOAD_PLUGINS="escale_relay_bar")
    assert "escale_relay_foo" not in {i["name"] for i in only}
    assert {"escale_relay_bar", "escale_cipher_aes"} <= {i["name"] for i in only}
    assert _listing(escale, tmp_path, ESCALE_LOAD_PLUGINS="") == []


def test_plugin_commands_are_added_and_credited(escale: RunEscale, tmp_path: Path) -> None:
    source = """
    import typer
    from escale_core import hookimpl
    @hookimpl
    def register_commands(app):
        @app.command()
        def hello(name: str = "world"):
            "Say hello."
            typer.echo(f"hello {name}")
    """
    make_plugin_dist(tmp_path, "escale-hello", "0.3", "escale_hello", source)
    env = {"PYTHONPATH": str(tmp_path)}
    assert escale("hello", "--name", "relay", env=env).stdout == "hello relay\n"
    assert "hello" in escale("--help", env=env).stdout
    info = _listing(escale, tmp_path)[0]
    assert info["provides"]["commands"] == ["hello"] and info["hooks"] == ["register_commands"]


def test_plugin_command_clashing_with_a_core_command_is_an_error(
    escale: RunEscale, tmp_path: Path
) -> None:
    source = """
    from escale_core import hookimpl
    @hookimpl
    def register_commands(app):
        @app.command()
        def sync():
            pass
    """
    make_plugin_dist(tmp_path, "escale-clash", "0.1", "escale_clash", source)
    env = {"PYTHONPATH": str(tmp_path)}
    run = escale("--help", env=env)  # the command list loads every plugin's commands
    assert run.returncode == 2
    assert run.error_lines == [
        "escale: error: plugin 'escale_clash' adds command 'sync', which already exists"
    ]
    # --version and the core commands load no plugin's commands, so they never see the clash
    assert escale("--version", env=env).returncode == 0


def test_external_relay_scheme_is_usable_in_config_validation(
    escale: RunEscale, tmp_path: Path
) -> None:
    make_plugin_dist(
        tmp_path / "site",
        "escale-relay-foo",
        "1.0",
        "escale_relay_foo",
        RELAY_PLUGIN.format(scheme="foo"),
    )
    config = tmp_path / "c.toml"
    config.write_text(f'[s]\npath = "{tmp_path}/A"\nrelay = "foo://host/x"\nencryption = "plain"\n')
    env = {"PYTHONPATH": str(tmp_path / "site")}
    assert escale("-c", str(config), "config", "check", env=env).returncode == 0
    run = escale(
        "-c",
        str(config),
        "config",
        "check",
        env={**env, "ESCALE_DISABLE_PLUGINS": "escale_relay_foo"},
    )
    assert run.returncode == 2 and "unknown relay scheme 'foo'" in run.stderr
