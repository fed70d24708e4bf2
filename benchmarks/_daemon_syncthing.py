"""Syncthing instances for the daemon benchmarks, on 127.0.0.1 only.

Each instance gets its own home (keys, ``config.xml``, database) from ``syncthing generate``;
the benchmark then edits ``config.xml`` before the first start: the sync protocol and the GUI
(REST) listen on free loopback ports, and everything that would reach out of the machine is
off (global and local discovery, relays, NAT traversal, STUN, usage and crash reports,
upgrades). The shared folder is made from the configuration's own ``<defaults><folder>``
element, so every folder setting is Syncthing's default (``fsWatcherEnabled`` with its 10 s
delay, ``rescanIntervalS`` 3600...). Processes run with ``--no-restart`` (no monitor process:
the pid measured is the one doing the work) and are stopped by pid.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from _daemon_common import clean_env, wait_until
from _measure import BenchmarkError

ROOT = Path(__file__).resolve().parent.parent
FOLDER_ID = "bench"

#: ``<options>`` values that keep an instance on loopback and quiet (nothing else changed).
OPTIONS = {
    "globalAnnounceEnabled": "false",
    "localAnnounceEnabled": "false",
    "relaysEnabled": "false",
    "natEnabled": "false",
    "stunKeepaliveStartS": "0",  # 0 turns STUN off
    "urAccepted": "-1",  # usage reporting refused, and never asked
    "crashReportingEnabled": "false",
    "autoUpgradeIntervalH": "0",
    "startBrowser": "false",
    "announceLANAddresses": "false",
}


def free_port() -> int:
    """A free port on 127.0.0.1 (the test servers' helper)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.servers import free_port as tests_free_port

    return tests_free_port()


def version(binary: str) -> Optional[str]:
    """``v1.19.2-ds1`` or the like; ``None`` when ``binary`` is not installed."""
    if shutil.which(binary) is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    words = out.stdout.split()
    return words[1] if len(words) > 1 else "unknown"


@dataclass
class Syncthing:
    """One instance: its home, its synced folder, its ports and, once started, its process."""

    binary: str
    home: Path
    folder: Path
    gui_port: int = field(default_factory=free_port)
    sync_port: int = field(default_factory=free_port)
    device_id: str = ""
    api_key: str = ""
    process: Optional[subprocess.Popen[bytes]] = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def generate(self) -> None:
        """Keys and a default ``config.xml`` (no default folder); read the device id and the
        API key from it."""
        self.home.mkdir(parents=True, exist_ok=True)
        # the folder marker Syncthing checks before syncing (it guards against a folder
        # whose disk is not mounted); the GUI creates it, an edited config.xml does not
        (self.folder / ".stfolder").mkdir(parents=True, exist_ok=True)
        command = [self.binary, "generate", "--home", str(self.home), "--no-default-folder"]
        subprocess.run(
            [*command, "--skip-port-probing"],
            capture_output=True,
            env=clean_env(HOME=str(self.home)),
            check=True,
        )
        root = ET.parse(self.home / "config.xml").getroot()
        self.device_id = _find(root, "device").attrib["id"]
        self.api_key = _find(root, "gui/apikey").text or ""

    def configure(self, peers: list[Syncthing]) -> None:
        """Loopback ports, the :data:`OPTIONS`, each peer as a device at its loopback port,
        and the folder shared with them, made from the defaults."""
        tree = ET.parse(self.home / "config.xml")
        root = tree.getroot()
        _find(root, "gui/address").text = f"127.0.0.1:{self.gui_port}"
        options = _find(root, "options")
        _find(options, "listenAddress").text = f"tcp://127.0.0.1:{self.sync_port}"
        for key, value in OPTIONS.items():
            element = options.find(key)  # (an element without children is falsy: no ``or``)
            (ET.SubElement(options, key) if element is None else element).text = value
        template = _find(root, "defaults/device")
        for index, peer in enumerate(peers):
            device = copy.deepcopy(template)
            device.set("id", peer.device_id)
            device.set("name", peer.home.name)
            _find(device, "address").text = f"tcp://127.0.0.1:{peer.sync_port}"
            root.insert(1 + index, device)  # devices before <gui>, as Syncthing writes them
        folder = copy.deepcopy(_find(root, "defaults/folder"))
        folder.set("id", FOLDER_ID)
        folder.set("label", FOLDER_ID)
        folder.set("path", str(self.folder))
        for peer in peers:
            shared = copy.deepcopy(_find(folder, "device"))
            shared.set("id", peer.device_id)
            folder.insert(list(folder).index(_find(folder, "device")) + 1, shared)
        root.insert(0, folder)
        tree.write(self.home / "config.xml")

    def start(self) -> None:
        """``syncthing serve`` in the background, its log in its home; wait for REST."""
        command = [self.binary, "serve", "--home", str(self.home), "--no-browser"]
        command += ["--no-restart", "--no-upgrade", "--no-default-folder"]
        with open(self.home / "syncthing.log", "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_env(HOME=str(self.home), STNOUPGRADE="1", STNORESTART="1"),
            )
        wait_until(lambda: self.rest("/rest/system/ping") is not None, "Syncthing's REST", 60)

    def rest(self, path: str) -> Any:
        """GET ``path`` from the REST API (JSON), ``None`` when it does not answer."""
        if self.process is not None and self.process.poll() is not None:
            raise BenchmarkError(
                f"syncthing exited with {self.process.returncode}; see {self.home}"
            )
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.gui_port}{path}", headers={"X-API-Key": self.api_key}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        try:
            with opener.open(request, timeout=10) as answer:
                return json.loads(answer.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def idle_with(self, peer: Optional[Syncthing]) -> bool:
        """The folder is scanned and idle, nothing is needed, and the peer (if any) is
        connected and has everything we have."""
        status = self.rest(f"/rest/db/status?folder={FOLDER_ID}")
        if not status or status.get("state") != "idle" or status.get("needTotalItems"):
            return False
        if peer is None:
            return bool(status.get("localFiles") is not None)
        connections = self.rest("/rest/system/connections") or {}
        if not connections.get("connections", {}).get(peer.device_id, {}).get("connected"):
            return False
        done = self.rest(f"/rest/db/completion?folder={FOLDER_ID}&device={peer.device_id}")
        return bool(done) and done.get("completion") == 100 and not done.get("needItems")

    def stop(self) -> None:
        """SIGTERM to its pid, SIGKILL after 20 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _find(element: ET.Element, path: str) -> ET.Element:
    found = element.find(path)
    if found is None:
        raise BenchmarkError(f"Syncthing's config.xml has no <{path}>")
    return found


def make_instances(binary: str, base: Path, names: list[str]) -> list[Syncthing]:
    """Instances named ``names`` under ``base``, each sharing the folder with all others."""
    instances = [Syncthing(binary, base / name, base / name / "folder") for name in names]
    for instance in instances:
        instance.generate()
    for instance in instances:
        instance.configure([peer for peer in instances if peer is not instance])
    return instances


def all_idle(instances: list[Syncthing]) -> bool:
    """Every instance idle, each with every other (only itself when alone)."""
    if len(instances) == 1:
        return instances[0].idle_with(None)
    return all(a.idle_with(b) for a in instances for b in instances if a is not b)


def start_all(instances: list[Syncthing], timeout: float) -> float:
    """Start the instances; return the seconds until all are connected and idle."""
    start = time.monotonic()
    for instance in instances:
        instance.start()
    wait_until(lambda: all_idle(instances), "Syncthing connected and idle", timeout, step=0.5)
    return time.monotonic() - start


def stop_all(instances: list[Syncthing]) -> None:
    """Stop every instance started, whatever happens."""
    for instance in instances:
        with contextlib.suppress(Exception):
            instance.stop()
