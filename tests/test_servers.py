"""The test servers' harness (``tests/servers``): a killed server leaves nothing serving."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from .servers import ServerProcess, children, free_port

#: A server that forks a worker every millisecond; each worker inherits the listening socket
#: and accepts on it, as Apache's do, until it is killed.
FORKING_SERVER = """
import os, socket, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
while True:
    if os.fork() == 0:
        while True:
            server.accept()[0].close()
    time.sleep(0.001)
"""


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return True
    return False


def test_a_killed_server_leaves_no_worker_serving_its_port_even_one_forked_meanwhile(
    tmp_path: Path,
) -> None:
    for _ in range(5):  # the fork race needs several tries to show
        port = free_port()
        command = [sys.executable, "-c", FORKING_SERVER, str(port)]
        server = ServerProcess(command, port, tmp_path / "server.log").start()
        assert server.process is not None
        time.sleep(0.05)
        assert children(server.process.pid), "the server forked no worker"
        server.kill()
        time.sleep(0.05)
        assert refused(port), "a worker of the killed server still accepts connections"
