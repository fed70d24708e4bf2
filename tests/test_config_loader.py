"""Valid configurations: defaults, original Escale names, globals, search order, display."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from escale_core.config import SECTION_OPTIONS, load_config, parse_config
from escale_core.config.model import SectionConfig
from escale_core.config.sections import default_client_name

from .conftest import RunEscale


def _parse(text: str, tmp_path: Path) -> dict[str, SectionConfig]:
    config = tmp_path / "escale.toml"
    config.write_text(text.replace("{tmp}", str(tmp_path)), encoding="utf-8")
    return load_config(config).sections


def test_defaults_are_applied_for_every_key_not_set(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("pass\n")
    s = _parse('[a]\npath = "A"\nrelay = "{tmp}/relay"\npassphrase_file = "k"\n', tmp_path)["a"]
    assert s.path == tmp_path / "A"  # relative to the configuration file's folder
    assert s.address.scheme == "file" and s.address.path == f"{tmp_path}/relay"
    assert (s.mode, s.encryption, s.pullers, s.quota) == ("shared", "aes-256-gcm", 1, None)
    assert (s.refresh, s.checksum, s.checksum_cache) == (30.0, "auto", True)
    assert s.max_page_size == 8 * 1024**2 and s.lock_timeout == 1800.0
    assert s.propagate_deletions is True and s.client == default_client_name("a")
    assert s.read_passphrase() == b"pass"
    assert s.explicit == {"path", "relay", "passphrase_file"}


def test_every_schema_key_is_a_field_of_section_config() -> None:
    fields = set(SectionConfig.__dataclass_fields__)
    assert {o.name for o in SECTION_OPTIONS} == fields - {"name", "file", "address", "explicit"}


def test_original_escale_names_are_accepted(tmp_path: Path) -> None:
    text = """
    ["old style"]
    "Local Path" = "{tmp}/A"
    "host address" = "example.org"
    protocol = "ftp"
    "relay port" = 8080
    "relay dir" = "escale/photos"
    "client name" = "laptop"
    "puller count" = 3
    "disk quota" = 200
    "synchronization-mode" = "share"
    "file type" = "jpg, .PNG"
    "include files" = "*.jpg"
    "exclude-directory" = ["tmp"]
    maxpagesize = "10 MiB"
    "hash algorithm" = "sha256"
    "modification time" = false
    "auth user" = "me"
    encryption = false
    """
    s = _parse("\n".join(line.strip() for line in text.splitlines()), tmp_path)["old style"]
    assert s.relay == "ftp://example.org:8080/escale/photos"
    assert (s.address.host, s.address.port, s.address.path) == (
        "example.org",
        8080,
        "/escale/photos",
    )
    assert (s.client, s.pullers, s.quota, s.mode) == ("laptop", 3, 200_000_000, "shared")
    assert s.file_types == ["jpg", "png"]
    assert [str(p) for p in s.include] == ["*.jpg"]
    assert [str(p) for p in s.exclude_directories] == ["tmp"]
    assert s.max_page_size == 10 * 1024**2 and s.checksum == "sha256"
    assert s.timestamp is False and s.username == "me" and s.encryption == "plain"


def test_original_local_relay_pieces_make_a_file_relay(tmp_path: Path) -> None:
    s = _parse('[a]\npath = "{tmp}/A"\n"relay path" = "{tmp}/R"\nencryption = "no"\n', tmp_path)[
        "a"
    ]
    assert s.address.scheme == "file" and s.address.path == f"{tmp_path}/R"
    assert s.encryption == "plain"


@pytest.mark.parametrize(
    ("flag", "mode"),
    [
        ("push only", "upload"),
        ("read only", "upload"),
        ("pull only", "download"),
        ("write-only", "download"),
    ],
)
def test_original_push_and_pull_only_flags_set_the_mode(
    tmp_path: Path, flag: str, mode: str
) -> None:
    text = f'[a]\npath = "A"\nrelay = "{{tmp}}/R"\nencryption = "plain"\n"{flag}" = "yes"\n'
    assert _parse(text, tmp_path)["a"].mode == mode


def test_top_level_section_keys_are_defaults_for_every_section(tmp_path: Path) -> None:
    text = (
        'encryption = "plain"\npullers = 2\nlog_level = "debug"\n'
        '[a]\npath = "A"\nrelay = "{tmp}/R1"\n[b]\npath = "B"\nrelay = "{tmp}/R2"\npullers = 5\n'
    )
    sections = _parse(text, tmp_path)
    assert sections["a"].pullers == 2 and sections["b"].pullers == 5
    assert sections["a"].encryption == sections["b"].encryption == "plain"


def test_global_keys_are_read(tmp_path: Path) -> None:
    config = tmp_path / "escale.toml"
    config.write_text('log_file = "~/x.log"\n"cache dir" = "state"\nlog_rotate = 5\n')
    g = load_config(config).globals
    assert g.log_file == Path.home() / "x.log" and g.state_dir == tmp_path / "state"
    assert g.log_rotate == 5 and g.log_level == "info"


def test_multipath_relay_is_split_into_mount_and_folder(tmp_path: Path) -> None:
    s = _parse(
        '[a]\npath = "A"\nrelay = "gdrive:///mnt/drive//Escale repo"\nencryption = "plain"\n',
        tmp_path,
    )
    # gdrive needs its package only when used without a mount; the address parses either way
    assert s["a"].address.mount == "/mnt/drive" and s["a"].address.path == "Escale repo"


def test_a_config_without_sections_is_valid(tmp_path: Path) -> None:
    assert parse_config('log_level = "debug"\n', tmp_path / "x.toml").sections == {}


def test_search_order_is_option_then_variable_then_user_directory(
    escale: RunEscale, isolated_env: dict[str, str], tmp_path: Path
) -> None:
    def config(name: str) -> Path:
        path = tmp_path / name / "escale.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f'[{name}]\npath = "{tmp_path}/{name}-A"\nrelay = "{tmp_path}/{name}-R"\n'
            'encryption = "plain"\n'
        )
        return path

    user = Path(isolated_env["XDG_CONFIG_HOME"]) / "escale"
    user.mkdir(parents=True)
    config("user").rename(user / "escale.toml")
    env_file, option_file = config("env"), config("option")
    assert "[user]" in escale("config", "check").stdout
    assert "[env]" in escale("config", "check", env={"ESCALE_CONFIG": str(env_file)}).stdout
    run = escale("-c", str(option_file), "config", "check", env={"ESCALE_CONFIG": str(env_file)})
    assert "[option]" in run.stdout and "[env]" not in run.stdout


def test_config_check_masks_secrets(escale: RunEscale, write_config: Callable[..., Path]) -> None:
    config = write_config("""
        [s]
        path = "{tmp}/A"
        relay = "sftp://me:hunter2@example.org/srv/x"
        passphrase = "correct horse"
        password = "hunter3"
        [s.relay_options]
        client_secret = "tok-123"
        key_filename = "~/.ssh/id"
        """)
    for args in (["config", "check"], ["config", "check", "--json"]):
        run = escale("-c", str(config), *args)
        assert run.returncode == 0, run.stderr
        for secret in ("hunter2", "hunter3", "correct horse", "tok-123"):
            assert secret not in run.stdout + run.stderr
        assert "~/.ssh/id" in run.stdout


def test_config_check_prints_effective_settings_as_json(
    escale: RunEscale, write_config: Callable[..., Path]
) -> None:
    config = write_config(
        '[s]\npath = "{tmp}/A"\nrelay = "file://{tmp}/relay"\nencryption = "plain"\n'
        'quota = "1.5 GiB"\ninclude = ["*.jpg"]\n'
    )
    run = escale("-c", str(config), "config", "check", "s", "--json")
    assert run.returncode == 0
    data = json.loads(run.stdout)["sections"]["s"]
    assert data["quota"] == int(1.5 * 1024**3) and data["include"] == ["*.jpg"]
    assert data["relay"].endswith("/relay") and data["mode"] == "shared"
    assert data["checksum"] == "auto" and data["checksum_resolved"] in ("blake3", "blake2b")


def test_obsolete_original_keys_warn_but_are_accepted(
    escale: RunEscale, write_config: Callable[..., Path]
) -> None:
    config = write_config(
        '[s]\npath = "{tmp}/A"\nrelay = "{tmp}/R"\nencryption = "plain"\n'
        'maintainer = "me@example.org"\n'
    )
    run = escale("-c", str(config), "config", "check")
    assert run.returncode == 0
    assert run.error_lines == [
        f"escale: warning: {config}: [s] maintainer: has no effect in "
        "escale (escale does not send mail); remove it"
    ]
    assert escale("-q", "-c", str(config), "config", "check").error_lines == []
