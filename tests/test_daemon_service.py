"""The daemon as a service (DESIGN §9): ``escale service install`` writes a systemd user unit
that systemd accepts, the daemon speaks sd_notify over a real datagram socket (READY, STATUS,
RELOADING, STOPPING, WATCHDOG), logs to the journal with priorities, and the launchd agent
runs the same command on macOS."""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Callable

import pytest

from escale_core.daemon.sdnotify import ServiceNotifier
from escale_core.daemon.service import daemon_command, launchd_plist, systemd_unit

from .clients import Client, Cluster
from .test_daemon import escale, started_pid, wait_until

Message = dict[str, str]


class NotifySocket:
    """What systemd's end of ``$NOTIFY_SOCKET`` receives, bound by the test."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[Message] = []

    def receive(self) -> None:
        """Add the datagrams waiting to :attr:`messages`."""
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def wait_for(
        self, check: Callable[[Message], bool], what: str, after: int = 0, timeout: float = 30
    ) -> int:
        """The index of the first message from ``after`` on that passes ``check``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.receive()
            for index in range(after, len(self.messages)):
                if check(self.messages[index]):
                    return index
        raise AssertionError(f"no {what} in {self.messages}")


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[str, NotifySocket]]:
    """A notify socket in the abstract namespace: ``($NOTIFY_SOCKET, socket)``."""
    name = f"escale-test-{uuid.uuid4().hex}"
    listener = NotifySocket("\0" + name)
    yield "@" + name, listener
    listener.sock.close()


def daemon_run(client: Client, env: dict[str, str], stderr: int | IO[str]) -> subprocess.Popen[str]:
    """``escale daemon-run`` (what the unit starts) in ``env``."""
    return subprocess.Popen(
        client.command("daemon-run"),
        env={**client.env, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def stopped(process: subprocess.Popen[str]) -> int:
    """SIGTERM ``process`` (if it runs) and return its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(60)


def test_the_generated_unit_passes_systemd_analyze_verify(cluster: Cluster, tmp_path: Path) -> None:
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed")
    a = cluster.add("alice")
    odd = tmp_path / "my config 100%" / "escale.toml"  # blanks and a specifier sign
    odd.parent.mkdir()
    odd.write_text(a.config.read_text())
    unit = tmp_path / "escale.service"
    printed = escale(a, "service", "install", "--print", "--config", str(odd))
    assert printed.returncode == 0, printed.stderr
    unit.write_text(printed.stdout)
    run = subprocess.run([verify, "verify", str(unit)], capture_output=True, text=True)
    assert run.returncode == 0 and "escale.service" not in run.stderr, run.stderr
    assert "Type=notify\n" in printed.stdout and "Restart=on-failure\n" in printed.stdout
    assert (
        "WatchdogSec=" in printed.stdout
        and "ExecReload=/bin/kill -HUP $MAINPID" in unit.read_text()
    )
    assert f'-c "{odd.parent}%/escale.toml" daemon-run' in printed.stdout  # % doubled, quoted


def test_a_daemon_under_systemd_says_ready_status_reloading_and_stopping(
    cluster: Cluster, notify: tuple[str, NotifySocket]
) -> None:
    address, received = notify
    a = cluster.add("alice", extra="refresh = 1")
    daemon = daemon_run(a, {"NOTIFY_SOCKET": address}, subprocess.DEVNULL)
    try:
        ready = received.wait_for(lambda m: m.get("READY") == "1", "READY=1")
        assert received.messages[ready]["MAINPID"] == str(daemon.pid)
        received.wait_for(lambda m: "shared" in m.get("STATUS", ""), "a status naming the section")
        daemon.send_signal(signal.SIGHUP)
        reloading = received.wait_for(lambda m: m.get("RELOADING") == "1", "RELOADING=1", ready + 1)
        received.wait_for(lambda m: m.get("READY") == "1", "READY=1 after reload", reloading + 1)
        daemon.send_signal(signal.SIGTERM)
        received.wait_for(lambda m: m.get("STOPPING") == "1", "STOPPING=1", reloading + 1)
        assert daemon.wait(60) == 0
    finally:
        stopped(daemon)
    assert not any("WATCHDOG" in m for m in received.messages), "no watchdog was asked for"


def test_the_status_line_names_a_section_backing_off_and_its_error(
    cluster: Cluster, notify: tuple[str, NotifySocket], tmp_path: Path
) -> None:
    address, received = notify
    broken = tmp_path / "broken-relay"
    broken.mkdir()
    (broken / "notes.txt").write_text("not a repository: every round of this section fails")
    a = cluster.add("alice", extra="refresh = 1")
    a.config.write_text(a.config.read_text().replace(cluster.relay, f"file://{broken}"))
    daemon = daemon_run(a, {"NOTIFY_SOCKET": address}, subprocess.DEVNULL)
    try:
        index = received.wait_for(
            lambda m: "backing off (" in m.get("STATUS", ""), "a status saying it backs off"
        )
    finally:
        stopped(daemon)
    line = received.messages[index]["STATUS"]
    assert line.startswith("1 section: shared backing off (") and "\n" not in line, line


def test_the_watchdog_pings_every_half_interval_for_the_right_process_only(
    cluster: Cluster, tmp_path: Path
) -> None:
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"escale-{uuid.uuid4().hex[:8]}"
    folder.mkdir()  # a socket path (not abstract) that fits the 108 bytes of sun_path
    try:
        received = NotifySocket(str(folder / "notify"))
        a = cluster.add("alice", extra="refresh = 1")
        env = {"NOTIFY_SOCKET": str(folder / "notify"), "WATCHDOG_USEC": "200000"}
        daemon = daemon_run(a, env, subprocess.DEVNULL)
        try:
            first = received.wait_for(lambda m: m.get("WATCHDOG") == "1", "WATCHDOG=1")
            received.wait_for(lambda m: m.get("WATCHDOG") == "1", "another ping", first + 1, 2)
        finally:
            stopped(daemon)
        other = {**env, "WATCHDOG_PID": "1"}  # meant for another process: no ping
        daemon = daemon_run(a, other, subprocess.DEVNULL)
        try:
            ready = received.wait_for(
                lambda m: m.get("READY") == "1", "READY=1", len(received.messages)
            )
            time.sleep(1)
            received.receive()
            assert not any("WATCHDOG" in m for m in received.messages[ready:])
        finally:
            stopped(daemon)
    finally:
        shutil.rmtree(folder)


def test_the_watchdog_goes_silent_while_the_main_loop_does_not_beat(
    notify: tuple[str, NotifySocket],
) -> None:
    address, received = notify
    service = ServiceNotifier(
        {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"}, stuck_after=0.5
    )
    service.ready({})
    try:
        received.wait_for(lambda m: m.get("WATCHDOG") == "1", "WATCHDOG=1")
        time.sleep(0.8)  # no beat: the pings stopped after 0.5 s
        received.receive()
        silent = len(received.messages)
        time.sleep(0.5)
        received.receive()
        assert len(received.messages) == silent, received.messages[silent:]
        service.update({})  # the loop beats again: so does the watchdog
        received.wait_for(lambda m: m.get("WATCHDOG") == "1", "a ping after the beat", silent)
    finally:
        service.stopping()
    assert received.wait_for(lambda m: m.get("STOPPING") == "1", "STOPPING=1", silent) >= silent


def journal_run(client: Client, tmp_path: Path, *, matching: bool, until: str) -> str:
    """Run the daemon with stderr in a file that ``$JOURNAL_STREAM`` names (or names another
    file), until ``until`` is logged; return what it wrote on stderr."""
    err = tmp_path / "stderr"
    with open(err, "w") as stream:
        info = os.fstat(stream.fileno()) if matching else os.stat(tmp_path)
        env = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        daemon = daemon_run(client, env, stream)
        try:
            wait_until(lambda: until in err.read_text() + logged(client), repr(until))
        finally:
            assert stopped(daemon) == 0
    return err.read_text()


def logged(client: Client) -> str:
    """The client's log file (the daemon's, in the cluster's state_dir)."""
    log = client.config.parent / "state" / "escale.log"
    return log.read_text() if log.exists() else ""


def test_under_the_journal_log_lines_carry_priorities_and_no_time(
    cluster: Cluster, tmp_path: Path
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    lines = journal_run(a, tmp_path, matching=True, until="daemon started").splitlines()
    assert "<6>daemon started: shared" in lines and "<6>daemon stopped" in lines, lines
    assert all(line[:3] == "<6>" for line in lines), lines
    assert logged(a) == "", "nothing goes to the log file under the journal"


def test_under_the_journal_log_level_holds_and_errors_carry_priority_3(
    cluster: Cluster, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-relay"
    broken.mkdir()
    (broken / "notes.txt").write_text("not a repository: every round of this section fails")
    a = cluster.add("alice", extra="refresh = 1")
    a.config.write_text(
        'log_level = "warning"\n' + a.config.read_text().replace(cluster.relay, f"file://{broken}")
    )
    lines = journal_run(a, tmp_path, matching=True, until="[shared]").splitlines()
    assert any(line.startswith("<3>[shared]") for line in lines), lines
    assert not any(line.startswith("<6>") for line in lines), lines


def test_an_inherited_journal_stream_that_is_not_stderr_keeps_the_log_file(
    cluster: Cluster, tmp_path: Path
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    assert "<6>" not in journal_run(a, tmp_path, matching=False, until="daemon started")
    assert "info daemon started: shared" in logged(a)


def unit_exec_start(unit: str) -> list[str]:
    """The words of the unit's ExecStart (paths without blanks or specifiers)."""
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_install_without_systemctl_writes_the_unit_and_says_what_to_run(
    cluster: Cluster, tmp_path: Path
) -> None:
    a = cluster.add("alice")
    a.env = {**a.env, "PATH": str(tmp_path / "no-tools")}
    unit = Path(a.env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "escale.service"
    run = escale(a, "service", "install")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"wrote {unit}; ") and len(run.stdout.splitlines()) == 1
    assert "systemctl --user enable --now escale.service" in run.stdout
    assert unit_exec_start(unit.read_text()) == daemon_command(a.config.resolve())
    removed = escale(a, "service", "uninstall")
    assert removed.returncode == 0 and f"removed {unit}" in removed.stdout
    assert not unit.exists()
    again = escale(a, "service", "uninstall")
    assert again.returncode == 0 and "not installed" in again.stdout, again.stdout


def fake_systemctl(folder: Path) -> Path:
    """A ``systemctl`` that records its arguments (no user manager runs in tests)."""
    folder.mkdir()
    calls = folder / "calls"
    tool = folder / "systemctl"
    tool.write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(calls))}\n')
    tool.chmod(0o755)
    return calls


def test_install_and_uninstall_drive_the_user_manager_through_systemctl(
    cluster: Cluster, tmp_path: Path
) -> None:
    a = cluster.add("alice")
    calls = fake_systemctl(tmp_path / "bin")
    a.env = {**a.env, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    run = escale(a, "service", "install")
    assert run.returncode == 0 and run.stdout.startswith("installed "), run.stderr
    assert calls.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now escale.service",
    ]
    calls.unlink()
    removed = escale(a, "service", "uninstall")
    assert removed.returncode == 0 and "stopped the service and removed" in removed.stdout
    assert calls.read_text().splitlines() == [
        "--user disable --now escale.service",
        "--user daemon-reload",
    ]


def test_install_is_refused_while_escale_start_runs_the_same_command(
    cluster: Cluster, tmp_path: Path
) -> None:
    a = cluster.add("alice", extra="refresh = 1")
    a.config = a.config.resolve()
    pid = started_pid(escale(a, "start"))
    try:
        run = escale(a, "service", "install")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    finally:
        escale(a, "stop")
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert f"running (pid {pid})" in run.stderr and "'escale stop'" in run.stderr
    unit = escale(a, "service", "install", "--print").stdout
    assert unit_exec_start(unit) == cmdline  # the service runs what start runs


def test_an_unwritable_unit_folder_is_one_line_naming_it(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.add("alice")
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the config folder should be")
    a.env = {**a.env, "XDG_CONFIG_HOME": str(blocker)}
    run = escale(a, "service", "install")
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert f"{blocker}/systemd/user/escale.service" in run.stderr
    assert "internal error" not in run.stderr and "--print" in run.stderr


def test_the_launchd_agent_runs_the_units_command_and_restarts_only_on_failure(
    tmp_path: Path,
) -> None:
    argv = daemon_command(tmp_path / "escale.toml")
    environment = {"ESCALE_STATE_DIR": str(tmp_path / "state")}
    agent = plistlib.loads(launchd_plist(argv, environment, tmp_path / "state" / "out.log"))
    assert agent["ProgramArguments"] == argv == unit_exec_start(systemd_unit(argv, environment))
    assert agent["Label"] == "org.escale.daemon" and agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["StandardErrorPath"] == str(tmp_path / "state" / "out.log")
    assert agent["EnvironmentVariables"] == environment


def test_the_unit_keeps_the_state_folder_the_shell_had(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.add("alice")
    a.env = {**a.env, "ESCALE_STATE_DIR": str(tmp_path / "state dir")}
    unit = escale(a, "service", "install", "--print")
    assert f'Environment="ESCALE_STATE_DIR={tmp_path}/state dir"' in unit.stdout.splitlines()
