"""Every bad configuration gives one line naming the file and key (or line), and exit status 2."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from .conftest import RunEscale

GOOD = """
[photos]
path = "{tmp}/A"
relay = "{tmp}/relay"
encryption = "plain"
"""

# (test id, configuration text, substrings the error line must contain)
CASES = [
    ("unknown-key", GOOD + 'colour = "red"\n', ["[photos] colour", "unknown key"]),
    ("unknown-key-suggests", GOOD + "puller = 2\n", ["[photos] puller", "did you mean 'pullers'"]),
    ("unknown-global-key", 'loglevel = "info"\n' + GOOD, ["loglevel", "unknown global key"]),
    ("unknown-nested-table", GOOD + "[photos.extra]\na = 1\n", ["[photos] extra", "unknown key"]),
    ("wrong-type-int", GOOD + 'pullers = "many"\n', ["[photos] pullers", "integer"]),
    ("int-below-minimum", GOOD + "pullers = 0\n", ["[photos] pullers", ">= 1"]),
    ("wrong-type-bool", GOOD + 'checksum_cache = "maybe"\n', ["checksum_cache", "true or false"]),
    ("wrong-type-list", GOOD + "include = 3\n", ["[photos] include", "array of strings"]),
    (
        "wrong-type-table",
        GOOD.replace('encryption = "plain"', 'relay_options = "x"\nencryption = "plain"'),
        ["relay_options", "table"],
    ),
    ("negative-refresh", GOOD + "refresh = -1\n", ["[photos] refresh", "> 0"]),
    (
        "missing-path",
        '[photos]\nrelay = "{tmp}/relay"\nencryption = "plain"\n',
        ["[photos] path", "missing required key 'path'"],
    ),
    (
        "missing-relay",
        '[photos]\npath = "{tmp}/A"\nencryption = "plain"\n',
        ["[photos] relay", "missing required key 'relay'"],
    ),
    ("bad-size", GOOD + 'quota = "2 parsecs"\n', ["[photos] quota", "size"]),
    ("bad-size-type", GOOD + "max_page_size = true\n", ["max_page_size", "size"]),
    ("bad-regex", GOOD + 'exclude = ["/(unclosed/"]\n', ["[photos] exclude", "regular expression"]),
    (
        "bad-mode",
        GOOD + 'mode = "sideways"\n',
        ["[photos] mode", "conservative, download, shared, upload"],
    ),
    ("page-size-too-big", GOOD + 'max_page_size = "1GiB"\n', ["max_page_size", "256 MiB"]),
    ("bad-duration", GOOD + 'lock_timeout = "soon"\n', ["lock_timeout", "duration"]),
    (
        "memory-relay",
        GOOD.replace('"{tmp}/relay"', '"memory://bucket/x"'),
        ["[photos] relay", "cannot serve as a relay", "file,"],
    ),
    (
        "read-only-relay",
        GOOD.replace('"{tmp}/relay"', '"zip://archive.zip"'),
        ["[photos] relay", "unknown relay scheme 'zip'"],
    ),
    (
        "http-relay",
        GOOD.replace('"{tmp}/relay"', '"https://example.org/x"'),
        ["[photos] relay", "unknown relay scheme 'https'"],
    ),
    ("bad-codes", GOOD + 'wait_on_error = ["x"]\n', ["wait_on_error", "integer codes"]),
    (
        "same-local-path",
        GOOD + '[other]\npath = "{tmp}/A"\nrelay = "{tmp}/relay2"\nencryption = "plain"\n',
        ["[other] path", "also synced by section [photos]"],
    ),
    (
        "nested-local-path",
        GOOD + '[other]\npath = "{tmp}/A/sub"\nrelay = "{tmp}/relay2"\nencryption = "plain"\n',
        ["[other] path", "also synced by section [photos]"],
    ),
    ("invalid-toml", GOOD + "pullers = = 2\n", ["line 6", "invalid TOML"]),
    ("invalid-toml-duplicate-table", GOOD + GOOD, ["invalid TOML", "line"]),
    (
        "unknown-cipher",
        GOOD.replace('"plain"', '"rot13"'),
        ["[photos] encryption", "unknown cipher 'rot13'"],
    ),
    (
        "cipher-without-passphrase",
        GOOD.replace('encryption = "plain"', ""),
        ["[photos] encryption", "needs a passphrase"],
    ),
    (
        "passphrase-file-missing",
        GOOD.replace('encryption = "plain"', 'passphrase_file = "{tmp}/nope.key"'),
        ["[photos] passphrase_file", "cannot read", "nope.key"],
    ),
    (
        "passphrase-file-empty",
        GOOD.replace('encryption = "plain"', 'passphrase_file = "{tmp}/empty.key"'),
        ["[photos] passphrase_file", "is empty"],
    ),
    (
        "passphrase-twice",
        GOOD.replace('encryption = "plain"', 'passphrase = "a"\npassphrase_file = "{tmp}/k.key"'),
        ["[photos] passphrase", "passphrase_file"],
    ),
    (
        "password-file-missing",
        GOOD + 'password_file = "{tmp}/nope.pw"\n',
        ["[photos] password_file", "cannot read"],
    ),
    (
        "unknown-relay-scheme",
        GOOD.replace('"{tmp}/relay"', '"foo://host/x"'),
        ["[photos] relay", "unknown relay scheme 'foo'", "escale-relay-foo"],
    ),
    (
        "relay-needs-package",
        GOOD.replace('"{tmp}/relay"', '"oci://bucket/x"'),
        ["[photos] relay", "needs ocifs"],
    ),
    (
        "relay-without-host",
        GOOD.replace('"{tmp}/relay"', '"sftp:///srv/x"'),
        ["[photos] relay", "names no host"],
    ),
    (
        "relay-not-an-address",
        GOOD.replace('"{tmp}/relay"', '"relay-folder"'),
        ["[photos] relay", "not a relay address"],
    ),
    (
        "relay-bad-port",
        GOOD.replace('"{tmp}/relay"', '"sftp://host:99999/x"'),
        ["[photos] relay", "port"],
    ),
    (
        "relay-inside-path",
        GOOD.replace('"{tmp}/relay"', '"{tmp}/A/relay"'),
        ["[photos] relay", "overlap"],
    ),
    (
        "path-is-a-file",
        GOOD.replace('"{tmp}/A"', '"{tmp}/k.key"'),
        ["[photos] path", "not a folder"],
    ),
    (
        "key-set-twice",
        GOOD + 'pullers = 2\n"Puller Count" = 3\n',
        ["[photos] Puller Count", "set twice"],
    ),
    (
        "push-and-pull-only",
        GOOD + 'push_only = true\n"pull only" = true\n',
        ["push-only and pull-only"],
    ),
    ("mode-and-push-only", GOOD + 'mode = "shared"\npush_only = true\n', ["push_only", "mode"]),
    ("unknown-checksum", GOOD + 'checksum = "crc7"\n', ["[photos] checksum", "unknown checksum"]),
    ("checksum-off", GOOD + "checksum = false\n", ["[photos] checksum", "always checksums"]),
    (
        "username-mismatch",
        GOOD.replace('"{tmp}/relay"', '"sftp://bob@host/x"') + 'username = "alice"\n',
        ["[photos] username", "differs"],
    ),
    ("path-at-top-level", 'path = "{tmp}/A"\n' + GOOD, ["path", "belongs in a section"]),
    ("empty-section-name", '[""]\npath = "{tmp}/A"\nrelay = "{tmp}/relay"\n', ["section name"]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_configuration_is_one_line_naming_the_key_and_exits_2(
    escale: RunEscale,
    write_config: Callable[..., Path],
    tmp_path: Path,
    text: str,
    expected: list[str],
) -> None:
    (tmp_path / "k.key").write_text("secret\n")
    (tmp_path / "empty.key").write_text("")
    config = write_config(text)
    run = escale("-c", str(config), "config", "check")
    assert run.returncode == 2, run.stdout
    assert "Traceback" not in run.stderr
    assert len(run.error_lines) == 1, run.stderr
    line = run.error_lines[0]
    assert line.startswith("escale: error: " + str(config)), line
    for part in expected:
        assert part.replace("{tmp}", str(tmp_path)) in line, line


def test_missing_config_file_names_it(escale: RunEscale, tmp_path: Path) -> None:
    run = escale("-c", str(tmp_path / "absent.toml"), "config", "check")
    assert run.returncode == 2
    assert run.error_lines == [
        f"escale: error: {tmp_path / 'absent.toml'}: cannot read the configuration file: "
        "No such file or directory"
    ]


def test_unreadable_config_file_names_it(escale: RunEscale, tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.toml"
    folder.mkdir()
    run = escale("-c", str(folder), "config", "check")
    assert run.returncode == 2
    assert len(run.error_lines) == 1
    assert str(folder) in run.stderr and "cannot read" in run.stderr


def test_config_that_is_not_utf8_names_the_line(escale: RunEscale, tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes(b'[photos]\npath = "caf\xe9"\n')
    run = escale("-c", str(config), "config", "check")
    assert run.returncode == 2
    assert run.error_lines == [
        f"escale: error: {config}, line 2: invalid TOML: the file is not UTF-8 text"
    ]


def test_escale_config_variable_pointing_nowhere_is_named(
    escale: RunEscale, tmp_path: Path
) -> None:
    run = escale("config", "check", env={"ESCALE_CONFIG": str(tmp_path / "gone.toml")})
    assert run.returncode == 2
    assert str(tmp_path / "gone.toml") in run.stderr and len(run.error_lines) == 1


def test_no_configuration_anywhere_says_where_it_looked(escale: RunEscale) -> None:
    run = escale("config", "check")
    assert run.returncode == 2
    assert len(run.error_lines) == 1
    assert "no configuration file" in run.stderr and "escale.toml" in run.stderr


def test_unknown_section_is_named_with_the_known_ones(
    escale: RunEscale, write_config: Callable[..., Path]
) -> None:
    config = write_config(GOOD)
    run = escale("-c", str(config), "config", "check", "nope")
    assert run.returncode == 2
    assert run.error_lines == [f"escale: error: {config}: no section [nope] (sections: photos)"]


def test_escale_debug_shows_the_traceback(
    escale: RunEscale, write_config: Callable[..., Path]
) -> None:
    config = write_config(GOOD + "pullers = 0\n")
    run = escale("-c", str(config), "config", "check", env={"ESCALE_DEBUG": "1"})
    assert run.returncode != 0
    assert "Traceback" in run.stderr and "ConfigError" in run.stderr
