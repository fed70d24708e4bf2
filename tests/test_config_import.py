"""``escale config import``: original Escale INI configurations (escale-original.md §6) become
TOML that loads and gives the same effective settings; what has no equivalent is named."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from escale_core.config import Config, SectionConfig, parse_config, schema
from escale_core.config.editing import update_section
from escale_core.errors import ConfigError
from escale_core.ops.importing import import_file

from .conftest import RunEscale

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class Result:
    """One conversion: the TOML as data, the warnings, and the TOML loaded by escale."""

    toml: dict[str, Any]
    warnings: list[str]
    config: Config

    def section(self, name: str = "s") -> SectionConfig:
        return self.config.section(name)

    def table(self, name: str = "s") -> dict[str, Any]:
        table: dict[str, Any] = self.toml[name]
        return table


def convert(tmp_path: Path, plugins: Any, ini: str) -> Result:
    """Write ``ini`` ({tmp} replaced) as old.conf, import it, and load the result."""
    old = tmp_path / "old.conf"
    old.write_text(textwrap.dedent(ini).replace("{tmp}", str(tmp_path)), encoding="utf-8")
    imported = import_file(old, plugins)
    text = imported.text()
    config = parse_config(text, tmp_path / "new.toml", plugins)  # must load, every fixture
    return Result(tomllib.loads(text), imported.warnings, config)


def section(
    body: str, local: str = "path = {tmp}/A", relay: str = "relay path = {tmp}/relay"
) -> str:
    """An original section [s] with a local path, a file relay and ``body``."""
    return f"[s]\n{local}\n{relay}\n{textwrap.dedent(body)}"


# -- relay: protocol + address + port + directory (+ user) ------------------------------------


@pytest.mark.parametrize(
    ("lines", "relay"),
    [
        (
            "protocol = sftp\nhost address = example.org\nport = 2222\nuser = me\n"
            "relay dir = srv/escale",
            "sftp://me@example.org:2222/srv/escale",
        ),
        (
            "relay address = sftp://me@example.org:22/srv\nremote directory = sub",
            "sftp://me@example.org:22/sub/srv",  # the original joined directory, then URL path
        ),
        (
            "protocol = webdav\nremote address = dav.example.org\nremote port = 8080\n"
            "remote path = dav/escale\nauth user = bob",
            "webdav://bob@dav.example.org:8080/dav/escale",
        ),
        (
            "protocol = https\naddress = dav.example.org\nhost dir = x",
            "webdavs://dav.example.org/x",
        ),
        ("protocol = ftp\naddress = me@ftp.example.org\nhost port = 21\ndir = e", None),
        ("protocol = file\nrelay path = {tmp}/relay", "file://{tmp}/relay"),
        ("host path = {tmp}/relay", "file://{tmp}/relay"),
        ("protocol = local\naddress = {tmp}\ndirectory = relay", "file://{tmp}/relay"),
        (
            "protocol = googledrive\nrelay address = /mnt/gd\nremote dir = Escale repository",
            "gdrive:///mnt/gd//Escale repository",
        ),
        (
            "address = googledrive:///mnt/gd//Escale repository",
            "gdrive:///mnt/gd//Escale repository",
        ),
    ],
)
def test_relay_parts_and_their_aliases_become_one_relay_url(
    tmp_path: Path, plugins: Any, lines: str, relay: str
) -> None:
    result = convert(tmp_path, plugins, section(lines + "\nencryption = off", relay=""))
    expected = (relay or "ftp://me@ftp.example.org:21/e").replace("{tmp}", str(tmp_path))
    assert result.table()["relay"] == expected
    loaded = result.section().address
    original_user = {"sftp": "me", "webdav": "bob", "ftp": "me"}.get(loaded.scheme)
    assert loaded.username == original_user


ALIASES = [
    *((a, "host.example.org", "address") for a in schema.LEGACY_RELAY_PARTS["address"]),
    *((a, "2121", "port") for a in schema.LEGACY_RELAY_PARTS["port"]),
    *((a, "srv/escale", "directory") for a in schema.LEGACY_RELAY_PARTS["directory"]),
    *((a, "me", "user") for a in ("user", "auth user", "host user", "relay user", "remote user")),
]


@pytest.mark.parametrize(("alias", "value", "part"), ALIASES)
def test_every_alias_of_the_relay_parts(
    tmp_path: Path, plugins: Any, alias: str, value: str, part: str
) -> None:
    parts = {"address": "address = h", "port": "", "directory": "directory = d", "user": ""}
    parts[part] = f"{alias} = {value}"
    lines = "protocol = ftp\n" + "\n".join(p for p in parts.values() if p)
    relay = convert(tmp_path, plugins, section(lines, relay="")).table()["relay"]
    expected = {
        "address": "ftp://host.example.org/d",
        "port": "ftp://h:2121/d",
        "directory": "ftp://h/srv/escale",
        "user": "ftp://me@h/d",
    }
    assert relay == expected[part]


def test_quoted_section_names_and_a_user_of_a_local_relay(tmp_path: Path, plugins: Any) -> None:
    ini = "[My Photos.2024]\npath = {tmp}/A\nrelay path = {tmp}/r\nuser = me\n"
    result = convert(tmp_path, plugins, ini)
    assert result.section("My Photos.2024").relay == f"file://{tmp_path}/r"
    assert "[My Photos.2024] 'user': no equivalent in escale (" in "\n".join(result.warnings)


def test_multi_path_relay_loads_as_mount_and_folder(tmp_path: Path, plugins: Any) -> None:
    lines = "protocol = googledrive\naddress = /mnt/gd\ndirectory = Escale repository"
    address = convert(tmp_path, plugins, section(lines, relay="")).section().address
    assert (address.mount, address.path) == ("/mnt/gd", "Escale repository")


def test_local_path_aliases(tmp_path: Path, plugins: Any) -> None:
    for alias in ("path", "local path"):
        result = convert(tmp_path, plugins, section("", local=f"{alias} = {{tmp}}/A"))
        assert result.section().path == tmp_path / "A"


def test_relative_paths_start_at_the_old_file_folder(tmp_path: Path, plugins: Any) -> None:
    result = convert(tmp_path, plugins, section("", local="local path = A"))
    assert result.table()["path"] == str(tmp_path / "A")


# -- mode ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "mode"),
    [
        ("mode = upload", "upload"),
        ("mode = download", "download"),
        ("synchronization mode = sharing", "shared"),
        ("mode = share", "shared"),
        ("mode = conservative", "conservative"),
        ("mode = protective", "conservative"),
        ("push only = yes", "upload"),
        ("read only = on", "upload"),
        ("pull only = 1", "download"),
        ("write only = true", "download"),
        ("mode = download\npush only = yes", "upload"),  # the flags win, as in the original
    ],
)
def test_mode_names_and_flags(tmp_path: Path, plugins: Any, lines: str, mode: str) -> None:
    result = convert(tmp_path, plugins, section(lines))
    assert result.table()["mode"] == mode and result.section().mode == mode


def test_a_false_flag_leaves_the_default_mode(tmp_path: Path, plugins: Any) -> None:
    result = convert(tmp_path, plugins, section("push only = no"))
    assert "mode" not in result.table() and result.section().mode == "shared"


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ("mode = preservative", r"\[s\] mode: unknown mode 'preservative' \(accepted: shared"),
        ("push only = yes\npull only = yes", "push only and pull only are both set"),
        ("push only = maybe", "expected true or false"),
    ],
)
def test_invalid_modes_are_refused(tmp_path: Path, plugins: Any, lines: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        convert(tmp_path, plugins, section(lines))


# -- encryption and passphrase ---------------------------------------------------------------


def test_encryption_on_with_a_passphrase_file(tmp_path: Path, plugins: Any) -> None:
    (tmp_path / "s.passphrase").write_text("c2VjcmV0LWZlcm5ldC1rZXk=\n")
    result = convert(tmp_path, plugins, section("encryption = on\npassphrase = s.passphrase"))
    assert result.table()["encryption"] == "aes-256-gcm"
    assert result.table()["passphrase_file"] == str(tmp_path / "s.passphrase")
    assert result.section().read_passphrase() == b"c2VjcmV0LWZlcm5ldC1rZXk="
    assert not [w for w in result.warnings if "encryption" in w]


def test_fernet_with_key_becomes_the_default_cipher_with_a_warning(
    tmp_path: Path, plugins: Any
) -> None:
    (tmp_path / "k").write_text("key\n")
    result = convert(tmp_path, plugins, section(f"encryption = fernet\nkey = {tmp_path}/k"))
    assert result.section().encryption == "aes-256-gcm"
    assert result.table()["passphrase_file"] == f"{tmp_path}/k"
    assert [w for w in result.warnings if w.startswith("[s] 'encryption': fernet becomes")]


def test_an_inline_passphrase_stays_inline(tmp_path: Path, plugins: Any) -> None:
    result = convert(tmp_path, plugins, section("encryption = yes\npassphrase = not a file"))
    assert result.table()["passphrase"] == "not a file"
    assert result.section().read_passphrase() == b"not a file"


@pytest.mark.parametrize(("line", "state"), [("encryption = off", "off"), ("", "not set")])
def test_encryption_off_or_absent_is_plain_with_a_warning(
    tmp_path: Path, plugins: Any, line: str, state: str
) -> None:
    result = convert(tmp_path, plugins, section(line))
    assert result.table()["encryption"] == "plain" and result.section().encryption == "plain"
    warnings = [w for w in result.warnings if "'encryption'" in w]
    assert len(warnings) == 1 and warnings[0].startswith(f"[s] 'encryption': {state}")
    assert 'encryption = "plain"' in warnings[0]


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ("encryption = on", "encryption needs a passphrase"),
        ("encryption = rot13\npassphrase = x", "unsupported encryption 'rot13'"),
    ],
)
def test_encryption_the_original_refused_is_refused(
    tmp_path: Path, plugins: Any, lines: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=rf"old.conf: \[s\] encryption: {problem}"):
        convert(tmp_path, plugins, section(lines))


# -- credentials, filters, numbers -----------------------------------------------------------


def test_credentials_inline_or_in_a_file(tmp_path: Path, plugins: Any) -> None:
    (tmp_path / "cred").write_text("me:pw\n")
    relay = "protocol = sftp\naddress = example.org"
    for key, out in (("password", "password_file"), ("secret file", "password_file")):
        result = convert(tmp_path, plugins, section(f"{key} = cred", relay=relay))
        assert result.table()[out] == str(tmp_path / "cred")
        assert result.section().password_file == tmp_path / "cred"
    for key in ("password", "secret", "credential"):
        result = convert(tmp_path, plugins, section(f"{key} = s3cret", relay=relay))
        assert result.table()["password"] == "s3cret" == result.section().password


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("file type = jpg, .PNG", "file_types", ["jpg", "png"]),
        ("file extension = .tif", "file_types", ["tif"]),
        ("include = *.jpg, /^raw_[0-9]+$/", "include", ["*.jpg", "/^raw_[0-9]+$/"]),
        ("include files = a*", "include", ["a*"]),
        ("pattern = b*", "include", ["b*"]),
        ("filter = c*", "include", ["c*"]),
        ("exclude = *.tmp, *~", "exclude", ["*.tmp", "*~"]),
        ("exclude files = *.bak", "exclude", ["*.bak"]),
        ("include directory = photos", "include_directories", ["photos"]),
        ("include directories = a, b", "include_directories", ["a", "b"]),
        ("exclude directory = tmp", "exclude_directories", ["tmp"]),
        ("exclude directories = cache", "exclude_directories", ["cache"]),
    ],
)
def test_filters_and_their_aliases(
    tmp_path: Path, plugins: Any, line: str, key: str, value: list[str]
) -> None:
    result = convert(tmp_path, plugins, section(line))
    assert result.table()[key] == value
    loaded = getattr(result.section(), key)
    assert [getattr(item, "source", item) for item in loaded] == value


@pytest.mark.parametrize(
    ("line", "key", "toml", "effective"),
    [
        ("disk quota = 2000", "quota", "2000MB", 2_000_000_000),  # MB, as in the original
        ("quota = 2GB", "quota", "2GB", 2_000_000_000),
        ("quota = 1.5 Go", "quota", "1.5 Go", 1_500_000_000),
        ("maxpagesize = 200MB", "max_page_size", "200MB", 200_000_000),
        ("maxarchivesize = 100", "max_page_size", "100MB", 100_000_000),
        ("puller count = 3", "pullers", 3, 3),
        ("pullers = 2", "pullers", 2, 2),
        ("refresh = 10", "refresh", 10, 10.0),
        ("refresh = 2.5", "refresh", 2.5, 2.5),
        ("refresh = 1", "refresh", 30, 30.0),  # read as a boolean by the original: true = 30 s
        ("client name = laptop", "client", "laptop", "laptop"),
        ("client = desk", "client", "desk", "desk"),
        ("checksum = sha256", "checksum", "sha256", "sha256"),
        ("hash algorithm = SHA512", "checksum", "sha512", "sha512"),
        ("checksum cache = no", "checksum_cache", False, False),
        ("timestamp = no", "timestamp", False, False),
        ("modification time = yes", "timestamp", True, True),
        ("mtime = %Y-%m-%d", "timestamp", "%Y-%m-%d", "%Y-%m-%d"),
        ("lock timeout = 600", "lock_timeout", 600, 600.0),
        ("verbosity = 2", "verbosity", 2, 2),
        ("verbosity level = 0", "verbosity", 0, 0),
        ("waitonerror = 503, 104", "wait_on_error", [503, 104], [503, 104]),
    ],
)
def test_values_convert_with_the_same_effective_setting(
    tmp_path: Path, plugins: Any, line: str, key: str, toml: Any, effective: Any
) -> None:
    result = convert(tmp_path, plugins, section(line))
    assert result.table()[key] == toml
    assert getattr(result.section(), key) == effective


@pytest.mark.parametrize(
    ("line", "key", "default", "warning"),
    [
        ("refresh = 0", "refresh", 30.0, "0 crashed the original"),
        ("maxpagesize = 1GB", "max_page_size", 8 * 1024**2, "above escale's largest pack"),
        ("checksum = no", "checksum", "auto", "no equivalent in escale (no checksum"),
        ("checksum = whirlpool", "checksum", "auto", "whirlpool is not installed"),
        ("checksum = yes", "checksum", "auto", None),
        ("lock timeout = no", "lock_timeout", 1800.0, "no equivalent in escale (locks never"),
        ("checksum cache = /var/cache/x", "checksum_cache", True, "a cache file"),
    ],
)
def test_values_escale_cannot_keep_fall_back_to_the_default_with_a_warning(
    tmp_path: Path, plugins: Any, line: str, key: str, default: Any, warning: Any
) -> None:
    result = convert(tmp_path, plugins, section(line))
    assert getattr(result.section(), key) == default
    option = line.split(" = ")[0]
    named = [w for w in result.warnings if w.startswith(f"[s] '{option}': ")]
    assert (warning in named[0]) if warning else not named


# -- globals ---------------------------------------------------------------------------------


def test_global_part_becomes_global_keys_and_section_defaults(tmp_path: Path, plugins: Any) -> None:
    ini = """\
        log file = {tmp}/escale.log
        log level = DEBUG
        log rotate = 5
        cache dir = {tmp}/cache
        keep alive = yes
        protocol = sftp
        refresh = 12
        encryption = off

        [a]
        local path = {tmp}/A
        address = a.example.org
        [b]
        local path = {tmp}/B
        address = b.example.org
        refresh = 20
        cache = {tmp}/elsewhere
        """
    result = convert(tmp_path, plugins, ini)
    g = result.config.globals
    assert (g.log_file, g.log_level, g.log_rotate) == (tmp_path / "escale.log", "debug", 5)
    assert g.state_dir == tmp_path / "cache"
    assert result.toml["refresh"] == 12  # a default of every section, as in the original
    assert result.section("a").refresh == 12 and result.section("b").refresh == 20
    assert result.section("a").relay == "sftp://a.example.org/"
    assert result.section("b").relay == "sftp://b.example.org/"
    assert "[DEFAULT] 'keep alive': no equivalent in escale (" in "\n".join(result.warnings)
    assert [w for w in result.warnings if w.startswith("[b] 'cache': no equivalent")]
    assert len([w for w in result.warnings if "'encryption'" in w]) == 2  # one per section


def test_header_comment_names_the_old_file_and_the_date(tmp_path: Path, plugins: Any) -> None:
    old = tmp_path / "old.conf"
    old.write_text(section("").replace("{tmp}", str(tmp_path)))
    now = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
    first = import_file(old, plugins, now).text().splitlines()[0]
    assert first == f"# Imported from {old} on 2026-01-02 03:04 UTC"


# -- options without an equivalent -----------------------------------------------------------

NO_EQUIVALENT = [
    "pull overwrite",
    "index",
    "compact",
    "maintainer",
    "email",
    "allow page deletion",
    "page deletion",
    "min split size",
    "split size",
    "max pending transfers",
    "retry on error",
    "retryonerror",
    "priority",
    "upload max wait",
    "ssl version",
    "verify ssl",
    "certfile",
    "cert file",
    "certificate",
    "keyfile",
    "key file",
    "private key",
    "rclone binary",
    "drive binary",
    "max retries",
    "client count",
    "homogeneous clients",
    "upload count",
    "no such option",
]


def test_every_option_without_an_equivalent_is_named_on_one_line(
    tmp_path: Path, plugins: Any
) -> None:
    body = "".join(f"{key} = 1\n" for key in NO_EQUIVALENT)
    result = convert(tmp_path, plugins, section(body + "encryption = off"))
    named = [w for w in result.warnings if "no equivalent in escale (" in w]
    assert [w.split("'")[1] for w in named] == NO_EQUIVALENT
    assert all(w.startswith("[s] '") and w.endswith(")") for w in named)
    assert "pulls always verify checksums" in named[0]
    for key in ("index", "max_page_size", "pull_overwrite", "keyfile", "passphrase_file"):
        assert key not in result.table()


# -- errors and the command line -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[s]\nlocal path = /x\nthis line is not INI\n", "old.conf, line 3: not valid INI"),
        ("[s]\npath = /a\npath = /b\n", "old.conf, line 3: not valid INI: [s] 'path' is set twice"),
        ("[s]\npath = /a\n[s]\n", "old.conf, line 3: not valid INI: section [s] appears twice"),
        ("[s]\nprotocol = file\n", "old.conf: [s] local path: missing"),
        ("[s]\npath = /a\n", "old.conf: [s] address: no relay address"),
        ("[s]\npath = /a\naddress = host\n", "cannot tell the protocol of 'host'"),
        ("[s]\npath = /a\nprotocol = ftp\naddress = h\nport = x\n", "port 'x' is not a number"),
        ("[s]\npath = /a\nrelay path = /r\nmode = both\n", "[s] mode: unknown mode 'both'"),
    ],
)
def test_invalid_ini_is_one_line_naming_the_file_exit_2(
    tmp_path: Path, escale: RunEscale, text: str, where: str
) -> None:
    old = tmp_path / "old.conf"
    old.write_text(text)
    run = escale("config", "import", str(old))
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.error_lines) == 1 and f"{old}" in run.stderr and where in run.stderr


def test_unreadable_or_missing_file_exit_2(tmp_path: Path, escale: RunEscale) -> None:
    (tmp_path / "bin.conf").write_bytes(b"[s]\npath = \xff\n")
    for name, problem in (("missing.conf", "cannot read it"), ("bin.conf", "line 2: not UTF-8")):
        run = escale("config", "import", str(tmp_path / name))
        assert run.returncode == 2 and len(run.error_lines) == 1
        assert f"{tmp_path / name}" in run.stderr and problem in run.stderr


ORIGINAL_A_CONF = """\
[sync]
client name = clientA
local path = {tmp}/A
protocol = file
relay path = {tmp}/old-relay
mode = upload
refresh = 2
encryption = fernet
passphrase = {tmp}/key
index = 1
"""


def test_cli_imports_to_stdout_or_o_and_refuses_to_overwrite_without_force(
    tmp_path: Path, escale: RunEscale
) -> None:
    (tmp_path / "key").write_text("original-fernet-key\n")
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "photo.jpg").write_text("pixels")
    old = tmp_path / "A.conf"
    old.write_text(ORIGINAL_A_CONF.replace("{tmp}", str(tmp_path)))
    printed = escale("config", "import", str(old))
    assert printed.returncode == 0 and printed.stdout.startswith(f"# Imported from {old}")
    assert tomllib.loads(printed.stdout)["sync"]["mode"] == "upload"
    assert "warning: [sync] 'index': no equivalent in escale" in printed.stderr
    assert "warning: [sync] 'encryption': fernet becomes aes-256-gcm" in printed.stderr

    new = tmp_path / "new.toml"
    assert escale("config", "import", str(old), "-o", str(new)).returncode == 0
    assert new.read_text().splitlines()[1:] == printed.stdout.splitlines()[1:]
    assert new.stat().st_mode & 0o077 == 0  # it may hold secrets
    new.write_text("# mine\n")
    refused = escale("config", "import", str(old), "-o", str(new))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert new.read_text() == "# mine\n"
    assert escale("config", "import", str(old), "-o", str(new), "--force").returncode == 0
    assert escale("-c", str(new), "config", "check").returncode == 0

    # escale refuses the original relay folder; a new empty one works (docs/migrating.md)
    update_section(new, "sync", {"relay": str(tmp_path / "new-relay")})
    synced = escale("-c", str(new), "sync", "sync")
    assert synced.returncode == 0, synced.stderr
    assert (tmp_path / "new-relay" / "escale.json").exists()


@pytest.mark.parametrize(
    ("pieces", "relay"),
    [
        ('"relay address" = "googledrive:///mnt/gd//Escale"', "gdrive:///mnt/gd//Escale"),
        ('protocol = "sftp"\naddress = "me@host"\ndirectory = "srv"', "sftp://me@host/srv"),
        ('"relay path" = "{tmp}/R"', "file://{tmp}/R"),
    ],
)
def test_the_loader_reads_legacy_relay_pieces_as_the_import_does(
    tmp_path: Path, plugins: Any, pieces: str, relay: str
) -> None:
    text = f'[s]\npath = "{{tmp}}/A"\n{pieces}\nencryption = "plain"\n'
    loaded = parse_config(text.replace("{tmp}", str(tmp_path)), tmp_path / "x.toml", plugins)
    assert loaded.section("s").relay == relay.replace("{tmp}", str(tmp_path))
    ini = convert(tmp_path, plugins, section(pieces.replace('"', ""), relay=""))
    assert ini.section().relay == loaded.section("s").relay


ORIGINAL_CLIENT = """\
cache dir = {tmp}/state-{name}

[photos]
client name = client{name}
local path = {tmp}/{name}
protocol = file
relay path = {tmp}/old-relay
encryption = fernet
passphrase = {tmp}/key
index = 1
"""


def test_migrating_md_steps_move_two_original_clients(tmp_path: Path, escale: RunEscale) -> None:
    """docs/migrating.md, steps 3 to 8: import both configurations, the original relay is
    refused, a new empty one works, and the second client's equal file is not downloaded."""
    (tmp_path / "key").write_text("the-original-fernet-key\n")
    (tmp_path / "old-relay").mkdir()
    (tmp_path / "old-relay" / "photo.jpg").write_text("an original placeholder relay")
    for name, files in (("A", ("photo.jpg", "doc.txt")), ("B", ("photo.jpg",))):
        (tmp_path / name).mkdir()
        for file in files:
            (tmp_path / name / file).write_text(f"content of {file}")
        old = tmp_path / f"{name}.conf"
        old.write_text(ORIGINAL_CLIENT.format(tmp=tmp_path, name=name))
        assert (
            escale("config", "import", str(old), "-o", str(tmp_path / f"{name}.toml")).returncode
            == 0
        )
    refused = escale("-c", str(tmp_path / "A.toml"), "sync", "photos")
    assert refused.returncode == 1 and "point the section at an empty folder" in refused.stderr
    assert [p.name for p in (tmp_path / "old-relay").iterdir()] == ["photo.jpg"]  # untouched
    for name in ("A", "B"):
        update_section(tmp_path / f"{name}.toml", "photos", {"relay": str(tmp_path / "new-relay")})
    assert escale("-c", str(tmp_path / "A.toml"), "sync", "photos").returncode == 0
    run = escale("-c", str(tmp_path / "B.toml"), "sync", "photos", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)["photos"]
    assert report["pulled"] == ["doc.txt"] and not report["conflicts"]  # photo.jpg: no transfer
    assert sorted(p.name for p in (tmp_path / "B").iterdir() if p.is_file()) == [
        "doc.txt",
        "photo.jpg",
    ]


def test_an_output_that_cannot_be_written_is_one_line_naming_it_exit_2(
    tmp_path: Path, escale: RunEscale
) -> None:
    old = tmp_path / "A.conf"
    old.write_text(ORIGINAL_A_CONF.replace("{tmp}", str(tmp_path)))
    (tmp_path / "afile").write_text("a file, not a folder")
    output = tmp_path / "afile" / "new.toml"  # its parent is a file: a real OSError, even as root
    run = escale("config", "import", str(old), "-o", str(output))
    assert run.returncode == 2, run.stderr
    assert run.error_lines[-1].startswith(f"escale: error: cannot write {output}: {output.parent}")
    assert [line for line in run.error_lines if "error" in line] == run.error_lines[-1:]
