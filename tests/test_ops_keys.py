"""``escale key passwd``: the same master key wrapped with a new passphrase; the other clients
accept the new header once they have the new passphrase, and refuse it with one line while
they have the old one; a header re-wrapped around another key or with a weaker KDF is still
refused; an interrupted change run again loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from escale_core.config import load_config
from escale_core.crypto import (
    derive_key,
    kdf_not_weaker,
    new_kdf,
    renewed_kdf,
    unwrap_key,
    wrap_key,
)
from escale_core.errors import IntegrityError, PassphraseChangedError, UsageError
from escale_core.history import LocalState
from escale_core.ops.keys import change_passphrase, pending_file, stage
from escale_core.plugins import Plugins
from escale_core.repository import _header_aad, rewrapped_header, write_header
from escale_core.session import open_section_relay, open_section_repository

from .clients import PASSPHRASE, Client, Cluster, same_tree, tree

NEW = "a new passphrase for everyone"


def relay_header(cluster: Cluster) -> dict[str, Any]:
    path = Path(cluster.relay.removeprefix("file://")) / "escale.json"
    header: dict[str, Any] = json.loads(path.read_text())
    return header


def put_header(cluster: Cluster, header: dict[str, Any]) -> None:
    path = Path(cluster.relay.removeprefix("file://")) / "escale.json"
    path.write_text(json.dumps(header, indent=1))


def master_key(header: dict[str, Any], passphrase: str) -> bytes:
    kek = derive_key(passphrase.encode(), header["kdf"])
    return unwrap_key(kek, header["key"], _header_aad(header))


def wrapped(header: dict[str, Any], master: bytes, passphrase: str, kdf: dict[str, Any]) -> dict:
    """``header`` with ``master`` wrapped by ``passphrase`` under ``kdf`` (as a tool would)."""
    new = {**header, "kdf": kdf}
    new["key"] = wrap_key(derive_key(passphrase.encode(), kdf), master, _header_aad(new))
    return new


def passwd(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        client.command("key", "passwd", client.section, *args),
        capture_output=True, text=True, env=client.env, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def key_of(client: Client) -> Path:
    return client.config.parent / "key"


def joined(cluster: Cluster, *names: str) -> list[Client]:
    clients = [cluster.add(name) for name in names]
    for client in clients:
        client.sync()
    return clients


def changed_line(cluster: Cluster, client: Client) -> str:
    return (
        f"escale: error: [shared] relay {cluster.relay}: the repository's passphrase was "
        f"changed (escale key passwd): put the new passphrase in {key_of(client)} (if nobody "
        "changed it, the relay's escale.json was tampered with); nothing was written"
    )


def test_after_passwd_clients_with_the_new_passphrase_converge_and_the_old_one_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b, c = joined(cluster, "a", "b", "c")
    a.write("report.txt", "before the change")
    a.sync()
    new_file = tmp_path / "new"
    new_file.write_text(NEW + "\n")
    header = relay_header(cluster)
    run = passwd(a, "--new-passphrase-file", str(new_file))
    assert run.returncode == 0, run.stderr
    assert "passphrase changed" in run.stdout
    assert key_of(a).read_text() == NEW + "\n" and key_of(a).stat().st_mode & 0o777 == 0o600
    after = relay_header(cluster)
    assert {k: v for k, v in after.items() if k not in ("kdf", "key")} == {
        k: v for k, v in header.items() if k not in ("kdf", "key")
    }
    assert after["kdf"]["salt"] != header["kdf"]["salt"]
    assert master_key(after, NEW) == master_key(header, PASSPHRASE)  # the same key
    a.write("later.txt", "after the change")
    a.sync()
    key_of(b).write_text(NEW + "\n")
    b.sync()
    assert same_tree(a.root, b.root)
    c.write("mine.txt", "not sent")
    before = tree(c.root)
    run = c.sync(check=False)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [changed_line(cluster, c)]
    assert tree(c.root) == before
    key_of(c).write_text(NEW + "\n")
    c.sync(check=False)  # pullers = 1: c asks a for a full re-send of what it missed
    a.sync()
    c.sync()
    a.sync()
    assert same_tree(a.root, c.root) and (a.root / "mine.txt").exists()


def test_generate_writes_a_new_random_passphrase_and_running_again_changes_nothing_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    (a,) = joined(cluster, "a")
    run = passwd(a, "--generate")
    assert run.returncode == 0, run.stderr
    generated = key_of(a).read_text().strip()
    assert generated != PASSPHRASE and len(generated) >= 32
    assert generated not in run.stdout + run.stderr  # a secret is never printed
    a.sync()
    same = tmp_path / "same"
    same.write_text(generated + "\n")
    run = passwd(a, "--new-passphrase-file", str(same))
    assert run.returncode == 0 and "already in force" in run.stdout


def test_a_rewrapped_header_with_a_weaker_kdf_is_refused(cluster: Cluster) -> None:
    (a,) = joined(cluster, "a")
    header = relay_header(cluster)
    master = master_key(header, PASSPHRASE)
    stronger = {**new_kdf(), "iterations": 3}
    put_header(cluster, wrapped(header, master, PASSPHRASE, stronger))
    a.sync()  # a stronger KDF around the same key: accepted, and kept from now on
    weaker = {**new_kdf(), "iterations": 2}  # above the global minimum, below the kept one
    put_header(cluster, wrapped(header, master, PASSPHRASE, weaker))
    before = tree(a.root)
    run = a.sync(check=False)
    assert run.returncode == 1
    (line,) = run.stderr.strip().splitlines()
    assert "is weaker than the one this client joined with" in line and "escale.json" in line
    assert tree(a.root) == before


def test_a_header_rewrapped_around_another_key_is_refused(cluster: Cluster) -> None:
    (a,) = joined(cluster, "a")
    header = relay_header(cluster)
    put_header(cluster, wrapped(header, os.urandom(32), PASSPHRASE, new_kdf()))
    run = a.sync(check=False)
    assert run.returncode == 1
    (line,) = run.stderr.strip().splitlines()
    assert "holds another key than the one this client joined with" in line


def test_a_client_that_joined_without_a_key_fingerprint_gets_one_and_follows_a_passwd(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = joined(cluster, "a", "b")
    state = LocalState("shared", b.config.parent / "state")
    state.db.execute("DELETE FROM meta WHERE key = 'key check'")  # as an older escale left it
    state.close()
    b.sync()  # the fingerprint is computed while the header is still the one it joined
    new_file = tmp_path / "new"
    new_file.write_text(NEW + "\n")
    assert passwd(a, "--new-passphrase-file", str(new_file)).returncode == 0
    key_of(b).write_text(NEW + "\n")
    b.sync()


def _open(client: Client, plugins: Plugins) -> Any:
    config = load_config(client.config, plugins)
    section = config.section("shared")
    relay = open_section_relay(section, plugins)
    return config, section, relay


def test_passwd_stopped_after_writing_the_header_is_finished_by_running_it_again(
    cluster: Cluster, tmp_path: Path, plugins: Plugins
) -> None:
    """Steps 1 and 2 done (the new passphrase beside the old one, the new header on the
    relay), step 3 not: the section's passphrase no longer opens the header; the pending one
    does, and the second run finishes the change."""
    (a,) = joined(cluster, "a")
    a.write("kept.txt", "data")
    a.sync()
    config, section, relay = _open(a, plugins)
    try:
        repo = open_section_repository(section, relay, plugins, create=False)
        stage(pending_file(config, section), NEW.encode())
        write_header(relay, rewrapped_header(repo.header, repo.sealer.master, NEW.encode()))
    finally:
        relay.close()
    assert key_of(a).read_text() == PASSPHRASE + "\n"  # interrupted here
    assert master_key(relay_header(cluster), pending_file(config, section).read_text().strip())
    run = a.sync(check=False)
    assert run.returncode == 1 and changed_line(cluster, a) in run.stderr
    new_file = tmp_path / "new"
    new_file.write_text(NEW + "\n")
    run = passwd(a, "--new-passphrase-file", str(new_file))
    assert run.returncode == 0, run.stderr
    assert "finished an interrupted" in run.stdout and "already in force" in run.stdout
    assert key_of(a).read_text() == NEW + "\n"
    assert not pending_file(config, section).exists()
    a.sync()
    assert (a.root / "kept.txt").read_text() == "data"


def test_passwd_stopped_before_the_header_keeps_the_old_passphrase_working(
    cluster: Cluster, tmp_path: Path, plugins: Plugins
) -> None:
    """Step 1 done only: the relay's header still opens with the section's passphrase; the
    next run (with another new passphrase) replaces the stale pending file."""
    (a,) = joined(cluster, "a")
    config, section, relay = _open(a, plugins)
    relay.close()
    stage(pending_file(config, section), b"abandoned passphrase")
    a.sync()
    new_file = tmp_path / "new"
    new_file.write_text(NEW + "\n")
    assert passwd(a, "--new-passphrase-file", str(new_file)).returncode == 0
    assert key_of(a).read_text() == NEW + "\n"
    assert master_key(relay_header(cluster), NEW)
    a.sync()


def test_an_inline_passphrase_is_changed_in_the_configuration_its_comments_kept(
    cluster: Cluster, tmp_path: Path, plugins: Plugins
) -> None:
    (a,) = joined(cluster, "a")
    text = a.config.read_text().replace(f'passphrase_file = "{key_of(a)}"', "")
    a.config.write_text("# comment kept\n" + text + f'passphrase = "{PASSPHRASE}"  # inline\n')
    a.sync()
    config = load_config(a.config, plugins)
    section = config.section("shared")
    with pytest.raises(UsageError, match="must be one line"):
        change_passphrase(config, section, plugins, b" spaced ")
    result = change_passphrase(config, section, plugins, NEW.encode())
    assert "passphrase key of [shared]" in result.place
    after = a.config.read_text()
    assert after.startswith("# comment kept\n") and f'passphrase = "{NEW}"' in after
    assert not pending_file(config, section).exists()
    a.sync()


def test_a_passphrase_file_shared_with_another_section_is_not_changed(
    cluster: Cluster, plugins: Plugins
) -> None:
    (a,) = joined(cluster, "a")
    other = a.root.parent / "other"
    a.config.write_text(
        a.config.read_text()
        + f'[other]\npath = "{other}"\nrelay = "file://{other}-relay"\n'
        + f'passphrase_file = "{key_of(a)}"\n'
    )
    config = load_config(a.config, plugins)
    with pytest.raises(UsageError, match=r"is also the one of \[other\]"):
        change_passphrase(config, config.section("shared"), plugins, NEW.encode())
    assert key_of(a).read_text() == PASSPHRASE + "\n"


def test_the_old_passphrase_error_is_its_own_class(cluster: Cluster, plugins: Plugins) -> None:
    """Opening with the kept header and the old passphrase after a change raises
    PassphraseChangedError (the CLI's one line), not a generic wrong-passphrase error."""
    (a,) = joined(cluster, "a")
    header = relay_header(cluster)
    put_header(cluster, wrapped(header, master_key(header, PASSPHRASE), NEW, new_kdf()))
    _, section, relay = _open(a, plugins)
    try:
        with pytest.raises(PassphraseChangedError, match=str(key_of(a))):
            open_section_repository(section, relay, plugins, kept=header, kept_key_check="x")
    finally:
        relay.close()


def _opens(header: dict[str, Any], *files: Path) -> bool:
    for file in files:
        if file.exists():
            try:
                master_key(header, file.read_text().splitlines()[0].strip())
                return True
            except IntegrityError:  # this file's passphrase does not open it
                continue
    return False


def _kill_when(proc: subprocess.Popen[bytes], seen: Callable[[], bool]) -> None:
    """Kill ``proc`` as soon as ``seen()`` holds (or let it end)."""
    while proc.poll() is None and not seen():
        time.sleep(0.0005)
    proc.kill()
    proc.wait()


def test_passwd_killed_between_its_steps_leaves_a_file_whose_passphrase_opens_the_header(
    cluster: Cluster,
) -> None:
    """Real processes killed the moment the pending file appears, or the header changes: at
    every stop the passphrase file or the pending one opens the relay's header; a run to the
    end then syncs with nothing lost."""
    (a,) = joined(cluster, "a")
    a.write("kept.txt", "data")
    a.sync()
    key, pending = key_of(a), key_of(a).with_name("key.new")
    header_file = Path(cluster.relay.removeprefix("file://")) / "escale.json"
    for trigger in ("pending", "header") * 3:
        before = header_file.read_bytes()
        proc = subprocess.Popen(
            a.command("key", "passwd", "shared", "--generate"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=a.env,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if trigger == "pending":
            _kill_when(proc, pending.exists)
        else:
            _kill_when(proc, lambda old=before: header_file.read_bytes() != old)
        assert _opens(relay_header(cluster), key, pending), f"killed after the {trigger}"
        # a killed run's maintenance lock expires after 10 minutes: as if they had passed
        (header_file.parent / "locks" / "maintenance").unlink(missing_ok=True)
    run = passwd(a, "--generate")
    assert run.returncode == 0, run.stderr
    assert _opens(relay_header(cluster), key) and not pending.exists()
    a.sync()
    assert (a.root / "kept.txt").read_text() == "data"


@pytest.mark.parametrize(
    "current",
    [
        {"name": "scrypt", "n": 2**16, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
        {
            "name": "argon2id",
            "memory_cost": 65536,
            "iterations": 2,
            "lanes": 4,
            "salt": "AAAAAAAAAAA=",
        },
    ],
)
def test_a_rewrap_keeps_the_kdf_algorithm_and_never_lowers_a_cost(current: dict) -> None:
    renewed = renewed_kdf(current)
    assert renewed["name"] == current["name"] and renewed["salt"] != current["salt"]
    assert kdf_not_weaker(renewed, current)
    assert not kdf_not_weaker(current, {**current, "iterations": 3, "n": 2**17})
