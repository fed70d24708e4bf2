"""What every operation holds: the relay's maintenance lock and the section's local lock; and
the configuration file edited in place with its comments kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from escale_core.config import load_config
from escale_core.config.editing import update_section
from escale_core.errors import ConfigError, EscaleError, RelayNotFoundError
from escale_core.locks import LockBusyError
from escale_core.ops import maintenance
from escale_core.plugins import Plugins


def _config(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    path = tmp_path / "escale.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n# the photos\n[photos]  # mine\n'
        f'"local path" = "{tmp_path / "folder"}"  # kept\nrelay = "file://{tmp_path}/relay"\n'
        'encryption = "plain"\n',
        encoding="utf-8",
    )
    return path


def test_update_section_keeps_comments_and_the_files_own_spelling_of_a_key(
    tmp_path: Path,
) -> None:
    path = _config(tmp_path)
    path.chmod(0o640)
    update_section(path, "photos", {"path": "/elsewhere", "pullers": 3, "encryption": None})
    text = path.read_text()
    assert '"local path" = "/elsewhere"  # kept' in text
    assert "# the photos" in text and "[photos]  # mine" in text
    assert "pullers = 3" in text and "encryption" not in text
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_update_section_refuses_a_missing_section_unless_asked_to_create_it(
    tmp_path: Path,
) -> None:
    path = _config(tmp_path)
    with pytest.raises(ConfigError, match=r"no section \[docs\]"):
        update_section(path, "docs", {"path": "/x"})
    update_section(path, "docs", {"path": "/x"}, create=True)
    assert "[docs]" in path.read_text()


def test_a_second_operation_on_one_repository_is_refused_while_the_first_runs(
    tmp_path: Path, plugins: Plugins
) -> None:
    config = load_config(_config(tmp_path), plugins)
    section = config.section("photos")
    other_state = tmp_path / "other-state"  # another client: its own local lock
    with maintenance(config, section, plugins, "check photos") as held:
        assert held.relay.list("locks") == ["locks/maintenance"]
        busy = pytest.raises(LockBusyError, match=r"\[photos\] .*another client runs an operation")
        with busy, maintenance(config, section, plugins, "check", directory=other_state, wait=0):
            pass
    with maintenance(config, section, plugins, "check photos", directory=other_state) as held:
        assert held.relay.list("locks") == ["locks/maintenance"]


def test_the_same_section_on_this_machine_is_refused_while_an_operation_runs(
    tmp_path: Path, plugins: Plugins
) -> None:
    config = load_config(_config(tmp_path), plugins)
    section = config.section("photos")
    busy = pytest.raises(EscaleError, match=r"\[photos\] is being synced by process")
    with (
        maintenance(config, section, plugins, "fix"),
        busy,
        maintenance(config, section, plugins, "fix"),
    ):
        pass


def test_an_operation_never_creates_a_repository_in_an_empty_relay_folder(
    tmp_path: Path, plugins: Plugins
) -> None:
    config = load_config(_config(tmp_path), plugins)
    with maintenance(config, config.section("photos"), plugins, "check photos") as held:
        with pytest.raises(RelayNotFoundError, match=r"\[photos\] .*no repository there yet"):
            held.open_repository()
        assert "escale.json" not in held.relay.list("")


def test_a_lock_left_by_this_clients_killed_operation_is_taken_back_at_once(
    tmp_path: Path, plugins: Plugins
) -> None:
    config_file = _config(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from escale_core.config import load_config\n"
            "from escale_core.ops import maintenance\n"
            "from escale_core.plugins import get_plugins\n"
            "config = load_config(sys.argv[1], get_plugins())\n"
            "with maintenance(config, config.section('photos'), get_plugins(), 'fix'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n",
            str(config_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    finally:
        holder.kill()  # the operation dies holding the relay's lock
        holder.wait()
    config = load_config(config_file, plugins)
    section = config.section("photos")
    busy = pytest.raises(LockBusyError, match="another client runs an operation")
    with busy, maintenance(config, section, plugins, "fix", directory=tmp_path / "b", wait=0):
        pass  # another client must still wait for it to expire
    with maintenance(config, section, plugins, "fix", wait=0) as held:
        assert held.relay.list("locks") == ["locks/maintenance"]
    assert held.relay.list("locks") == []
