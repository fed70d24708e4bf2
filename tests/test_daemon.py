"""The daemon in real processes: ``escale start`` keeps every section in sync in the
background, one daemon per configuration, ``stop`` ends it, SIGHUP reloads the configuration,
and a failing section never stops the others."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from escale_core.manager import get_pid_file

from .clients import Client, Cluster, add, network_cluster, same_tree
from .servers import RelayServer


def escale(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        client.command(*args), capture_output=True, text=True, env=client.env, timeout=120
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no parent reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def watching(client: Client) -> bool:
    """Whether the client's daemon follows file-system events (its log says so)."""
    log = client.config.parent / "state" / "escale.log"
    return log.exists() and "following file-system events" in log.read_text()


def last_sync(client: Client) -> object:
    """When the client's last round ended, as ``status --json`` says."""
    return json.loads(escale(client, "status", "--json").stdout)[client.section]["last_sync"]


def started_pid(run: subprocess.CompletedProcess[str]) -> int:
    """The pid ``escale start`` printed."""
    assert run.returncode == 0, run.stderr
    return int(run.stdout.rsplit("pid ", 1)[1].rstrip(")\n"))


@pytest.fixture
def start() -> Iterator[Callable[[Client], int]]:
    """``start(client)`` runs ``escale start`` and returns the daemon's pid; every daemon
    started is stopped at the end."""
    started: list[Client] = []

    def run(client: Client) -> int:
        started.append(client)
        return started_pid(escale(client, "start"))

    yield run
    for client in started:
        escale(client, "stop")


def test_a_second_start_is_refused_naming_the_running_daemon_and_stop_ends_it(
    cluster: Cluster, start: Callable[[Client], int]
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    pid = start(a)
    again = escale(a, "start")
    assert again.returncode == 1
    assert f"already running (pid {pid}" in again.stderr and "escale stop" in again.stderr
    # the seed's API names the file that holds the running daemon's pid
    assert get_pid_file(str(a.config)).read_text().split()[0] == str(pid)
    stopped = escale(a, "stop")
    assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout
    assert not alive(pid)
    log = (a.config.parent / "state" / "escale.log").read_text()
    assert "daemon stopped" in log and "internal error" not in log, log
    assert "not running" in escale(a, "stop").stdout


def test_sighup_picks_up_a_new_section_and_a_failing_section_never_stops_another(
    cluster: Cluster, start: Callable[[Client], int], tmp_path: Path
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    b = cluster.add("bob", extra="refresh = 1")
    pid = start(a)
    other = tmp_path / "other"
    other.mkdir()
    broken_relay = tmp_path / "broken-relay"
    broken_relay.mkdir()
    (broken_relay / "notes.txt").write_text("not a repository: this section fails every round")
    key = tmp_path / "clients" / "alice" / "key"
    a.config.write_text(
        a.config.read_text()
        + f'\n[broken]\npath = "{other}"\nrelay = "file://{broken_relay}"\nclient = "alice"\n'
        f'passphrase_file = "{key}"\n'
    )
    os.kill(pid, signal.SIGHUP)
    log = a.config.parent / "state" / "escale.log"  # the cluster's state_dir
    wait_until(lambda: log.exists() and "[broken]" in log.read_text(), "the new section's error")
    a.write("still.txt", "the shared section still syncs")
    b.sync()
    wait_until(
        lambda: b.sync(check=False) and (b.root / "still.txt").exists(), "alice's file on bob"
    )
    lines = log.read_text().splitlines()
    assert any("configuration reloaded" in line for line in lines)
    assert all(line[:4].isdigit() for line in lines if line), "every line starts with its time"


def test_a_daemon_killed_mid_way_leaves_a_pid_file_the_next_start_takes_over(
    cluster: Cluster, start: Callable[[Client], int]
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    pid = start(a)
    os.kill(pid, signal.SIGKILL)
    restarted: list[int] = []

    def started() -> bool:  # the lock goes with the process, the pid file stays
        run = escale(a, "start")
        if run.returncode == 0:
            restarted.append(started_pid(run))
        return bool(restarted)

    wait_until(started, "a start after the kill")
    assert restarted[0] != pid
    a.write("after.txt", "synced by the new daemon")
    b = cluster.add("bob")
    wait_until(
        lambda: b.sync(check=False) and (b.root / "after.txt").exists(), "the new daemon's push"
    )


def test_status_says_whether_the_daemon_runs(
    cluster: Cluster, start: Callable[[Client], int]
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    assert escale(a, "status").stdout.startswith("daemon: not running\n")
    pid = start(a)
    assert escale(a, "status").stdout.startswith(f"daemon: running (pid {pid})\n")


def test_changes_travel_on_file_system_events_not_on_the_timer(
    cluster: Cluster, start: Callable[[Client], int]
) -> None:
    """With a local relay both sides announce their changes: with ``refresh = 600`` the timer
    cannot be what brings alice's file to bob within the wait below."""
    a = cluster.add("alice", extra="refresh = 600")
    b = cluster.add("bob", extra="refresh = 600")
    a.sync()
    b.sync()
    for client in (a, b):
        start(client)
        wait_until(lambda c=client: watching(c), "the watch")
    a.write("news.txt", "written while both daemons were idle")
    wait_until(lambda: (b.root / "news.txt").exists(), "alice's file on bob", timeout=60)
    b.write("reply.txt", "and back")
    wait_until(lambda: (a.root / "reply.txt").exists(), "bob's reply on alice", timeout=60)


def test_without_watch_the_timer_alone_starts_rounds(
    cluster: Cluster, start: Callable[[Client], int]
) -> None:
    a = cluster.add("alice", extra="refresh = 600\nwatch = false")
    b = cluster.add("bob")
    a.sync()
    before = last_sync(a)
    start(a)
    wait_until(lambda: last_sync(a) != before, "the daemon's first round")
    a.write("held.txt", "waits for the timer")
    time.sleep(4)
    b.sync()
    assert not (b.root / "held.txt").exists()


def test_pause_holds_changes_until_resume(cluster: Cluster, start: Callable[[Client], int]) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    b = cluster.add("bob")
    a.sync()
    pid = start(a)
    wait_until(lambda: watching(a), "the watch")
    paused = escale(a, "pause")
    assert paused.returncode == 0 and f"paused: shared (daemon pid {pid})" in paused.stdout
    assert "in the daemon: paused" in escale(a, "status").stdout
    control = a.config.parent / "state" / "escale.sock"
    assert stat.S_IMODE(control.stat().st_mode) == 0o600  # only its user may connect
    a.write("held.txt", "held while paused")
    time.sleep(3)  # events and three timer periods pass: no round runs
    b.sync()
    assert not (b.root / "held.txt").exists()
    assert escale(a, "resume").returncode == 0
    wait_until(lambda: b.sync(check=False) and (b.root / "held.txt").exists(), "the held change")


def test_sync_while_the_daemon_runs_asks_it_for_a_round_instead_of_racing_it(
    cluster: Cluster, start: Callable[[Client], int]
) -> None:
    a = cluster.add("alice", extra="refresh = 600\nwatch = false")
    b = cluster.add("bob")
    a.sync()
    pid = start(a)
    a.write("now.txt", "sent by the round escale sync asked for")
    run = a.sync()
    assert f"round run by the daemon (pid {pid})" in run.stdout, run.stdout
    b.sync()
    assert (b.root / "now.txt").exists()
    escale(a, "pause")
    held = a.sync(check=False)
    assert held.returncode == 1 and "escale resume shared" in held.stdout


def test_pause_without_a_daemon_is_one_line(cluster: Cluster) -> None:
    run = escale(cluster.add("alice"), "pause")
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "escale: error: escale's daemon is not running: nothing to pause ('escale start')"
    )


def test_a_log_file_that_cannot_be_written_is_one_line(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.add("alice")
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the log's folder should be")
    a.config.write_text(f'log_file = "{blocker}/escale.log"\n' + a.config.read_text())
    run = escale(a, "start")
    assert run.returncode == 1
    assert run.stderr.strip().startswith(f"escale: error: log file {blocker}/escale.log: "), (
        run.stderr
    )
    assert "log_file" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def daemon_view(client: Client) -> dict[str, Any]:
    """What the running daemon does with the client's section (``status --json``)."""
    found: dict[str, Any] = json.loads(escale(client, "status", "--json").stdout)[client.section][
        "daemon"
    ]
    return found


def test_an_idle_daemon_checks_a_network_relay_without_rounds_and_a_change_starts_one(
    sftp_server: RelayServer,
    tmp_path: Path,
    isolated_env: dict[str, str],
    start: Callable[[Client], int],
) -> None:
    cluster = network_cluster(sftp_server, tmp_path, isolated_env)
    a = add(cluster, sftp_server, "alice", "refresh = 1")
    b = add(cluster, sftp_server, "bob")
    a.write("from-alice.txt", "one")
    start(a)
    wait_until(lambda: daemon_view(a)["checks"] >= 2, "idle relay checks")
    idle = daemon_view(a)
    wait_until(lambda: daemon_view(a)["checks"] >= idle["checks"] + 2, "more idle checks")
    assert daemon_view(a)["rounds"] == idle["rounds"]  # checking scans no local file
    b.sync()
    b.write("from-bob.txt", "two")
    b.sync()
    wait_until(lambda: (a.root / "from-bob.txt").exists(), "bob's file on alice")
    assert daemon_view(a)["rounds"] > idle["rounds"]
    assert same_tree(a.root, b.root)


def test_two_idle_daemons_on_a_watched_relay_folder_do_not_wake_each_other(
    cluster: Cluster, start: Callable[[Client], int]
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    b = cluster.add("bob", extra="refresh = 1")
    a.write("f.txt", "one")
    for client in (a, b):
        start(client)
    wait_until(lambda: (b.root / "f.txt").exists() and watching(a) and watching(b), "the file")

    def rounds() -> tuple[int, int]:
        return daemon_view(a)["rounds"], daemon_view(b)["rounds"]

    settled: list[tuple[int, int]] = []

    def quiet() -> bool:  # no round for two seconds: each would wake the other within one
        settled.append(rounds())
        time.sleep(2)
        return rounds() == settled[-1]

    wait_until(quiet, "idle daemons to stop running rounds", timeout=60)
    b.write("g.txt", "two")  # and a change still travels
    wait_until(lambda: (a.root / "g.txt").exists(), "bob's file on alice")


def test_a_state_folder_too_deep_for_a_unix_socket_still_gets_a_control_socket(
    cluster: Cluster, start: Callable[[Client], int], tmp_path: Path
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    deep = tmp_path / ("d" * 60) / ("e" * 60)  # beyond the 108 bytes of sun_path
    a.config.write_text(a.config.read_text().replace(str(a.config.parent / "state"), str(deep)))
    pid = start(a)
    status = escale(a, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["shared"]["daemon"]["state"] is not None
    assert f"daemon: running (pid {pid})" in escale(a, "status").stdout
    assert not (deep / "escale.sock").exists()


def test_an_operation_is_refused_while_the_daemon_syncs_the_section_unless_paused(
    cluster: Cluster, start: Callable[[Client], int]
) -> None:
    from escale_core.config import load_config
    from escale_core.errors import UsageError
    from escale_core.ops import refuse_if_daemon_syncs
    from escale_core.plugins import get_plugins

    a = cluster.add("alice", extra="refresh = 1")
    a.sync()
    start(a)
    config = load_config(a.config, get_plugins())
    with pytest.raises(UsageError, match=r"\[shared\] is being synced by the running daemon"):
        refuse_if_daemon_syncs(config, "shared", "check shared")
    assert escale(a, "pause", "shared").returncode == 0
    refuse_if_daemon_syncs(config, "shared", "check shared")  # paused: allowed
    refuse_if_daemon_syncs(config, "other", "check other")  # not a section it syncs
