"""``escale init``: a section written only once its repository is created or joined, its key
file private from the start, the configuration's comments kept, foreign relay folders refused;
asked on a terminal, or from flags with ``--yes``."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from .clients import Cluster, add, same_tree, toml_value
from .conftest import RunEscale
from .servers import RelayServer

COMMENTED = '# my escale configuration\nstate_dir = "{state}"  # where the state goes\n'


def _config(tmp_path: Path, name: str = "escale.toml") -> Path:
    path = tmp_path / name
    path.write_text(COMMENTED.format(state=tmp_path / f"state-{name}"), encoding="utf-8")
    return path


def _init(escale: RunEscale, config: Path, section: str, *args: str) -> object:
    return escale("-c", str(config), "init", section, *args, "--yes")


def test_init_with_flags_creates_the_repository_then_writes_the_section_keeping_comments(
    tmp_path: Path, escale: RunEscale
) -> None:
    config = _config(tmp_path)
    folder, relay = tmp_path / "docs", tmp_path / "relay"
    run = escale(
        "-c", str(config), "init", "docs", "--path", str(folder), "--relay", f"file://{relay}",
        "--client", "laptop", "--mode", "upload", "--pullers", "2", "--generate-key", "--yes",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "created repository" in run.stdout and "created the local folder" in run.stdout
    text = config.read_text()
    assert text.startswith(COMMENTED.format(state=tmp_path / "state-escale.toml"))
    assert "[docs]" in text and 'client = "laptop"' in text and 'mode = "upload"' in text
    assert "pullers = 2" in text
    key = tmp_path / "docs.key"
    assert f'passphrase_file = "{key}"' in text
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text().strip()) >= 32
    assert folder.is_dir()
    header = json.loads((relay / "escale.json").read_text())
    assert header["cipher"] == "aes-256-gcm" and header["key"]
    assert sorted(p.name for p in relay.iterdir()) == ["escale.json"]  # probe cleaned up
    (folder / "a.txt").write_text("from init")
    assert escale("-c", str(config), "sync", "docs").returncode == 0


def test_a_second_client_joins_with_init_and_the_same_key_file_then_both_converge(
    tmp_path: Path, escale: RunEscale
) -> None:
    relay = f"file://{tmp_path / 'relay'}"
    first, second = _config(tmp_path, "one.toml"), _config(tmp_path, "two.toml")
    assert _init(escale, first, "s", "--path", str(tmp_path / "one"), "--relay", relay,
                 "--client", "one", "--generate-key").returncode == 0  # fmt: skip
    (tmp_path / "one" / "x.txt").write_text("x")
    assert escale("-c", str(first), "sync", "s").returncode == 0
    run = _init(escale, second, "s", "--path", str(tmp_path / "two"), "--relay", relay,
                "--client", "two", "--passphrase-file", str(tmp_path / "s.key"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "joined the existing repository" in run.stdout
    assert escale("-c", str(second), "sync", "s").returncode == 0
    assert (tmp_path / "two" / "x.txt").read_text() == "x"


def test_init_joining_with_another_passphrase_is_refused_and_writes_no_section(
    tmp_path: Path, escale: RunEscale
) -> None:
    relay = f"file://{tmp_path / 'relay'}"
    first, second = _config(tmp_path, "one.toml"), _config(tmp_path, "two.toml")
    assert _init(escale, first, "s", "--path", str(tmp_path / "one"), "--relay", relay,
                 "--generate-key").returncode == 0  # fmt: skip
    other = tmp_path / "other.key"
    other.write_text("not the passphrase\n")
    before = second.read_text()
    run = _init(escale, second, "s", "--path", str(tmp_path / "two"), "--relay", relay,
                "--passphrase-file", str(other))  # fmt: skip
    assert run.returncode == 1
    assert len(run.error_lines) == 1 and "wrong passphrase" in run.error_lines[0]
    assert second.read_text() == before and not (tmp_path / "two").exists()


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["photos.manifest", "photos.0001.placeholder"], "original Escale relay"),
        (["notes.txt"], "holds files but no escale.json"),
    ],
)
def test_init_refuses_a_relay_folder_holding_something_else(
    tmp_path: Path, escale: RunEscale, names: list[str], expected: str
) -> None:
    relay = tmp_path / "relay"
    relay.mkdir()
    for name in names:
        (relay / name).write_text("someone else's")
    config = _config(tmp_path)
    before = config.read_text()
    run = _init(escale, config, "docs", "--path", str(tmp_path / "docs"), "--relay",
                f"file://{relay}", "--generate-key")  # fmt: skip
    assert run.returncode == 1
    assert len(run.error_lines) == 1 and expected in run.error_lines[0]
    assert "[docs] relay" in run.error_lines[0]
    assert config.read_text() == before
    assert sorted(p.name for p in relay.iterdir()) == sorted(names)  # not even probed
    assert not (tmp_path / "docs").exists()


def test_init_refuses_an_existing_section_unless_forced(tmp_path: Path, escale: RunEscale) -> None:
    config = _config(tmp_path)
    args = ("--path", str(tmp_path / "docs"), "--relay", f"file://{tmp_path / 'relay'}")
    assert _init(escale, config, "docs", *args, "--generate-key").returncode == 0
    written = config.read_text()
    run = _init(escale, config, "docs", *args, "--encryption", "plain")
    assert run.returncode == 2
    assert run.error_lines == [
        f"escale: error: [docs] already exists in {config}: choose another section name, or "
        "pass --force to replace its relay, folder and key settings"
    ]
    assert config.read_text() == written
    other = f"file://{tmp_path / 'relay2'}"
    run = _init(escale, config, "docs", "--path", str(tmp_path / "docs"), "--relay", other,
                "--encryption", "plain", "--force")  # fmt: skip
    assert run.returncode == 0, run.stderr
    text = config.read_text()
    assert text.count("[docs]") == 1 and "relay2" in text and "passphrase_file" not in text


def test_init_without_a_required_flag_is_a_one_line_usage_error(
    tmp_path: Path, escale: RunEscale
) -> None:
    config = _config(tmp_path)
    run = _init(escale, config, "docs", "--relay", f"file://{tmp_path / 'relay'}")
    assert run.returncode == 2
    assert run.error_lines == [
        "escale: error: escale init: missing --path (or run it on a terminal without --yes)"
    ]
    run = _init(escale, config, "docs", "--path", str(tmp_path / "d"), "--relay",
                f"file://{tmp_path / 'relay'}")  # fmt: skip
    assert run.returncode == 2
    assert "--generate-key, or --passphrase-file FILE" in run.error_lines[0]
    assert not (tmp_path / "relay").exists()


def test_init_run_again_after_an_interruption_reuses_its_key_file_and_joins(
    tmp_path: Path, escale: RunEscale
) -> None:
    """Stopped after the repository was created but before the section was written: the
    second run keeps the key file (a new one would lose the repository) and joins."""
    config = _config(tmp_path)
    before = config.read_text()
    args = ("--path", str(tmp_path / "docs"), "--relay", f"file://{tmp_path / 'relay'}")
    assert _init(escale, config, "docs", *args, "--generate-key").returncode == 0
    key = (tmp_path / "docs.key").read_text()
    config.write_text(before)  # as if the run had stopped before writing the section
    run = _init(escale, config, "docs", *args, "--generate-key")
    assert run.returncode == 0, run.stderr
    assert "kept (made by an earlier run" in run.stdout and "joined" in run.stdout
    assert (tmp_path / "docs.key").read_text() == key
    assert escale("-c", str(config), "sync", "docs").returncode == 0


def _relay_option_flags(server: RelayServer) -> list[str]:
    """``--relay-option`` flags giving what ``server`` needs (its options, a password)."""
    flags = [
        f"--relay-option={key}={toml_value(value)}" for key, value in server.relay_options.items()
    ]
    if server.config.startswith("password = "):
        password = server.config.split('"')[1]
        flags.append(f"--relay-option=password={password}")
    return flags


@pytest.mark.parametrize("backend", ["webdav_server", "sftp_server"])
def test_init_on_a_network_relay_then_sync_and_a_second_client_joins(
    tmp_path: Path,
    escale: RunEscale,
    isolated_env: dict[str, str],
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    server: RelayServer = request.getfixturevalue(backend)
    url = server.url(f"init-{uuid.uuid4().hex[:8]}")
    config = _config(tmp_path)
    run = _init(escale, config, "web", "--path", str(tmp_path / "web"), "--relay", url,
                *_relay_option_flags(server), "--generate-key")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "relay probes: all passed" in run.stdout and "created repository" in run.stdout
    (tmp_path / "web" / "doc.txt").write_text("over the network")
    assert escale("-c", str(config), "sync", "web").returncode == 0
    cluster = Cluster(tmp_path / "clients", url, isolated_env)
    passphrase = (tmp_path / "web.key").read_text().strip()
    other = add(cluster, server, "other")
    (other.config.parent / "key").write_text(passphrase + "\n")  # the key file, copied
    other.sync()
    assert escale("-c", str(config), "sync", "web").returncode == 0
    assert same_tree(tmp_path / "web", other.root)


# --- on a terminal -------------------------------------------------------------------------


class Terminal:
    """``escale init`` on a pseudo-terminal: wait for a prompt, type an answer."""

    def __init__(self, env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "escale_core", "init"],
            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"waited for {text!r}; the terminal shows:\n{self.seen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                assert chunk, f"exited before {text!r}; the terminal shows:\n{self.seen}"
                self.seen += chunk.decode(errors="replace")
        self.seen = self.seen[self.seen.index(text) + len(text) :]

    def answer(self, prompt: str, text: str) -> None:
        self.expect(prompt)
        os.write(self.master, text.encode() + b"\r")

    def close(self) -> int:
        code = self.proc.wait(timeout=60)
        os.close(self.master)
        return code


def test_init_on_a_terminal_asks_each_value_and_writes_the_user_configuration(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    terminal = Terminal(isolated_env)
    try:
        terminal.answer("Section name:", "notes")
        terminal.answer("Local folder to sync:", str(tmp_path / "notes"))
        terminal.answer("Relay URL:", f"file://{tmp_path / 'relay'}")
        terminal.answer("Client name [", "desk")
        terminal.answer("Mode", "download")
        terminal.answer("Pullers [1]:", "3")
        terminal.answer("Generate a new key file", "y")
        terminal.expect("written to")
    finally:
        code = terminal.close()
    assert code == 0
    user = Path(isolated_env["XDG_CONFIG_HOME"]) / "escale"
    text = (user / "escale.toml").read_text()
    assert "[notes]" in text and 'client = "desk"' in text and 'mode = "download"' in text
    assert "pullers = 3" in text and f'passphrase_file = "{user / "notes.key"}"' in text
    assert (user / "notes.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "relay" / "escale.json").exists() and (tmp_path / "notes").is_dir()


def _no_file_growth() -> None:
    """In the child: any write that makes a file grow fails (EFBIG: Python ignores SIGXFSZ),
    as a crash or a full disk in the middle of writing the key would."""
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_init_stopped_while_writing_the_key_leaves_no_empty_key_file(
    tmp_path: Path, isolated_env: dict[str, str], escale: RunEscale
) -> None:
    config = _config(tmp_path)
    args = ("--path", str(tmp_path / "docs"), "--relay", f"file://{tmp_path / 'relay'}")
    command = [sys.executable, "-m", "escale_core", "-c", str(config), "init", "docs"]
    failed = subprocess.run(
        [*command, *args, "--generate-key", "--yes"],
        capture_output=True,
        text=True,
        env=isolated_env,
        stdin=subprocess.DEVNULL,
        preexec_fn=_no_file_growth,
        timeout=60,
    )
    assert failed.returncode != 0
    assert not (tmp_path / "docs.key").exists()
    assert [p.name for p in tmp_path.iterdir() if ".key" in p.name] == []
    run = _init(escale, config, "docs", *args, "--generate-key")
    assert run.returncode == 0, run.stderr
    key = tmp_path / "docs.key"
    assert len(key.read_text().strip()) >= 32 and key.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("key", [False, True], ids=["configuration", "key file"])
def test_init_whose_files_cannot_be_written_says_which_in_one_line_exit_2(
    tmp_path: Path, escale: RunEscale, key: bool
) -> None:
    (tmp_path / "afile").write_text("a file, not a folder")
    config = tmp_path / "afile" / "escale.toml"  # its parent is a file: a real OSError as root
    args = ["--path", str(tmp_path / "docs"), "--relay", f"file://{tmp_path / 'relay'}"]
    args += ["--generate-key"] if key else ["--encryption", "plain"]
    run = _init(escale, config, "docs", *args)
    assert run.returncode == 2, run.stderr
    failed = tmp_path / "afile" / ("docs.key" if key else "escale.toml")
    assert len(run.error_lines) == 1
    assert run.error_lines[0].startswith(f"escale: error: cannot write {failed}: {failed.parent}")
