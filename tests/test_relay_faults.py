"""One fault suite for every network relay: a server killed in the middle of a push or a pull,
a stopped server and a wrong password each fail the round in one clear line, and the next round
resumes and converges; an update written after another client's listing reaches it; ``escale
relay check`` passes. Each backend runs the same test bodies against its real server
(``tests/servers``), started for the test so that it may be killed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest

from .clients import MIB, Client, Cluster, add, relay_check, same_tree
from .servers import RelayServer

BACKENDS = ["ftp", "sftp", "webdav", "s3", "apache", "vsftpd", "proftpd", "rclone"]
BIG = 60 * MIB
PAGE = 'max_page_size = "4MiB"'


@pytest.fixture(params=BACKENDS)
def own_server(request: pytest.FixtureRequest) -> RelayServer:
    """A private server of each backend, which the test may kill and restart."""
    server: RelayServer = request.getfixturevalue(f"{request.param}_server_own")
    return server


@pytest.fixture(params=BACKENDS)
def shared_server(request: pytest.FixtureRequest) -> RelayServer:
    """The session's server of each backend."""
    server: RelayServer = request.getfixturevalue(f"{request.param}_server")
    return server


def new_cluster(server: RelayServer, tmp_path: Path, env: dict[str, str]) -> Cluster:
    return Cluster(tmp_path / "clients", server.url(f"repo-{uuid.uuid4().hex[:8]}"), env)


def random_file(client: Client, rel: str, size: int) -> Path:
    path = client.write(rel, b"")
    with open(path, "wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))
    return path


def disk_bytes(root: Path, *, final_only: bool = False) -> int:
    """Bytes in the files under ``root`` (only complete objects with ``final_only``: the
    relays' temporaries are hidden names)."""
    total = 0
    for path in root.rglob("*") if root.exists() else []:
        if final_only and path.name.startswith("."):
            continue
        with contextlib.suppress(OSError):  # renamed or removed meanwhile
            total += path.stat().st_size if path.is_file() else 0
    return total


def stored_data(server: RelayServer, cluster: Cluster) -> Callable[[], int]:
    """How many bytes of data objects the server holds for the cluster's repository."""
    recording = getattr(server, "recording", None)
    if recording is not None:  # moto keeps objects in memory and records requests (base64)
        return lambda: recording.stat().st_size * 3 // 4
    assert server.files is not None
    data = server.files / cluster.relay.rsplit("/", 1)[1] / "data"
    return lambda: disk_bytes(data, final_only=True)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, f"escale ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


def assert_one_clear_failure(process: subprocess.Popen[str], *, names_server: bool = True) -> str:
    """Exit 1 and one line naming the section and the relay (and the server's address): no
    traceback. Returns the line."""
    _, stderr = process.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 1, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "internal error" not in lines[0] and lines[0].count("[shared] relay") == 1, lines[0]
    assert not names_server or "127.0.0.1" in lines[0], lines[0]
    return lines[0]


WRONG_PASSWORD = "wrong-password-4f1c"


def wrong_login(server: RelayServer, tmp_path: Path) -> tuple[str, dict[str, object]]:
    """The section's credential lines and relay options for ``server``, with a login it
    refuses (skipped where the test server accepts anyone)."""
    options = dict(server.relay_options)
    if server.name == "rclone":  # the login is in the remote's rclone.conf
        from .servers.rclone import obscured

        config = Path(str(options["config"]))
        wrong = tmp_path / "wrong-rclone.conf"
        text = config.read_text(encoding="utf-8")
        text = re.sub(r"^pass = .*$", f"pass = {obscured(WRONG_PASSWORD)}", text, flags=re.M)
        wrong.write_text(text, encoding="utf-8")
        return server.config, {**options, "config": str(wrong)}
    if "client_keys" in options:  # sshd: a key it was never given
        import asyncssh

        key = tmp_path / "unknown_key"
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
        return server.config, {**options, "client_keys": [str(key)]}
    if server.name == "s3":  # the access key stays right, its secret is wrong
        return f'username = "{server.key}"\npassword = "{WRONG_PASSWORD}"', options
    if "://anonymous@" in server.url_prefix:
        pytest.skip("vsftpd's test login is anonymous: any password is accepted")
    return f'password = "{WRONG_PASSWORD}"', options


def test_a_push_cut_by_a_server_crash_fails_in_one_line_and_the_next_round_resumes(
    own_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = new_cluster(own_server, tmp_path, isolated_env)
    a = add(cluster, own_server, "alice", PAGE)
    b = add(cluster, own_server, "bob")
    a.write("notes.txt", "before the crash")
    random_file(a, "big.bin", BIG)
    stored = stored_data(own_server, cluster)
    push = a.start_sync()
    wait_for(lambda: stored() >= 24 * MIB, push, "24 MiB stored")
    own_server.server.kill()
    assert_one_clear_failure(push)
    own_server.server.restart()
    report = json.loads(a.sync("--json").stdout)["shared"]
    assert report["wire_up"] < BIG - 8 * MIB, "the stored chunks were sent again"
    assert report["bytes_resumed"] >= 8 * MIB
    b.sync()
    assert same_tree(a.root, b.root)


def test_a_pull_cut_by_a_server_crash_fails_in_one_line_and_the_next_round_converges(
    own_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = new_cluster(own_server, tmp_path, isolated_env)
    a = add(cluster, own_server, "alice", PAGE)
    b = add(cluster, own_server, "bob")
    random_file(a, "big.bin", BIG)
    a.write("notes/small.txt", "pulled after the crash")
    a.sync()
    pull = b.start_sync()
    wait_for(lambda: disk_bytes(b.root) >= 8 * MIB, pull, "8 MiB pulled")
    own_server.server.kill()
    assert_one_clear_failure(pull)
    big = b.root / "big.bin"  # never a partial file under its name
    assert not big.exists() or big.read_bytes() == (a.root / "big.bin").read_bytes()
    own_server.server.restart()
    b.sync()
    a.sync()
    assert same_tree(a.root, b.root)  # byte-identical, and no temporary file left


def test_a_wrong_login_fails_in_one_line_that_never_shows_the_password(
    shared_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = new_cluster(shared_server, tmp_path, isolated_env)
    login = wrong_login(shared_server, tmp_path)
    mallory = add(cluster, shared_server, "mallory", login=login)
    mallory.write("a.txt", "never sent")
    line = assert_one_clear_failure(mallory.start_sync(), names_server=False)
    assert re.search(r"(?i)login|credentials|password|secret|key|refused access", line), line
    assert WRONG_PASSWORD not in line, line
    assert not (
        shared_server.files and (shared_server.files / cluster.relay.rsplit("/", 1)[1]).exists()
    )


def test_a_stopped_server_fails_in_one_line_and_a_round_after_its_restart_converges(
    own_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = new_cluster(own_server, tmp_path, isolated_env)
    a, b = add(cluster, own_server, "alice"), add(cluster, own_server, "bob")
    a.write("a.txt", "before")
    a.sync()
    own_server.server.stop()
    a.write("a.txt", "while the server was down")
    assert_one_clear_failure(a.start_sync(), names_server=own_server.name != "rclone")
    own_server.server.restart()
    a.sync()
    b.sync()
    assert same_tree(a.root, b.root)
    assert (b.root / "a.txt").read_text() == "while the server was down"


#: What ``escale relay check`` must also say of a backend, beyond "nothing FAILED".
CHECK_SAYS = {
    "ftp": r"best effort",  # pyftpdlib: no atomic exclusive create over FTP
    "s3": r"exclusive create +ok +atomic",  # moto: conditional writes (If-None-Match)
}


def test_relay_check_passes_on_every_backend(
    shared_server: RelayServer,
    tmp_path: Path,
    isolated_env: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    out = relay_check(shared_server, tmp_path, isolated_env)
    assert "FAILED" not in out, out
    says = CHECK_SAYS.get(request.node.callspec.params["shared_server"])
    assert says is None or re.search(says, out), out


def test_a_watching_client_sees_writes_made_after_its_listing(
    shared_server: RelayServer, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    cluster = new_cluster(shared_server, tmp_path, isolated_env)
    a = add(cluster, shared_server, "alice")
    b = add(cluster, shared_server, "bob", "refresh = 1")
    a.write("first.txt", "1")
    a.write("gone.txt", "deleted after bob listed")
    a.sync()
    watch = b.start_sync("--watch")
    try:
        wait_for((b.root / "gone.txt").exists, watch, "bob's first round")
        a.write("first.txt", "1, edited after bob listed")
        a.write("second.txt", "2")
        (a.root / "gone.txt").unlink()
        a.sync()
        wait_for(lambda: same_tree(a.root, b.root), watch, "bob's later round")
    finally:
        watch.terminate()
        watch.communicate(timeout=30)
