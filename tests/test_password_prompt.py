"""A missing relay password is asked for on a terminal, never echoed, never logged."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import sys
import time
from pathlib import Path


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_password_is_prompted_without_echo_on_a_terminal(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there: the connection is refused
    config = tmp_path / "escale.toml"
    config.write_text(
        f'[s]\npath = "{tmp_path}/A"\nrelay = "ftp://alice@127.0.0.1:{port}/x"\n'
        'encryption = "plain"\n'
    )
    pid, fd = pty.fork()
    if pid == 0:  # the child: escale on a terminal
        os.execve(
            sys.executable,
            [sys.executable, "-m", "escale_core", "-c", str(config), "relay", "check", "s"],
            isolated_env,
        )
    prompt = _read_until(fd, b"password for alice", 30)
    assert b"[s] password for alice on ftp://alice@127.0.0.1" in prompt
    os.write(fd, b"hunter2-secret\n")
    rest = _read_until(fd, b"\x00never", 60)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert b"hunter2-secret" not in prompt + rest  # not echoed, not in any message
    assert b"Traceback" not in rest


def test_a_password_given_in_relay_options_is_not_asked_for_again(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "escale.toml"
    config.write_text(
        f'[s]\npath = "{tmp_path}/A"\nrelay = "ftp://alice@127.0.0.1:{port}/x"\n'
        'encryption = "plain"\n[s.relay_options]\npassword = "given"\n'
    )
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(
            sys.executable,
            [sys.executable, "-m", "escale_core", "-c", str(config), "relay", "check", "s"],
            isolated_env,
        )
    out = _read_until(fd, b"password for alice", 60)
    if b"password for alice" in out:
        os.kill(pid, signal.SIGKILL)  # waiting for an answer that never comes
    _, status = os.waitpid(pid, 0)
    assert b"password for alice" not in out
    assert os.waitstatus_to_exitcode(status) == 1  # connection refused: nothing listens
