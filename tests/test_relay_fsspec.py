"""The fsspec relay on the local and memory filesystems (network relays: tests with servers)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from escale_core.address import parse_relay_url
from escale_core.errors import RelayNotFoundError
from escale_core.plugins import Plugins
from escale_core.relay import Relay, open_relay


@pytest.fixture(params=["file", "memory", "multipath"])
def relay(request: pytest.FixtureRequest, tmp_path: Path, plugins: Plugins) -> Relay:
    url = {
        "file": f"file://{tmp_path}/relay",
        "memory": f"memory://bucket-{uuid.uuid4().hex}/repo",
        "multipath": f"gdrive://{tmp_path}/mount//Escale repo",
    }[request.param]
    return open_relay(parse_relay_url(url, frozenset({"gdrive", "file"})), plugins.relays)


def test_write_list_read_overwrite_delete(relay: Relay) -> None:
    assert relay.list() == []
    relay.write_bytes("updates/c1/0001", b"x" * 10)
    relay.write_bytes("header", b"h")
    assert relay.list() == ["header", "updates/c1/0001"]
    assert relay.list("updates") == ["updates/c1/0001"]
    assert relay.read_bytes("updates/c1/0001") == b"x" * 10
    relay.write_bytes("header", b"h2")
    assert relay.read_bytes("header") == b"h2"
    relay.delete("header")
    relay.delete("header")  # a missing object is not an error
    assert relay.list() == ["updates/c1/0001"]
    assert relay.exists("updates/c1/0001") and not relay.exists("header")


def test_reading_a_missing_object_is_a_relay_error(relay: Relay) -> None:
    with pytest.raises(RelayNotFoundError):
        relay.read_bytes("nope")


def test_multipath_relay_writes_inside_the_mounted_folder(tmp_path: Path, plugins: Plugins) -> None:
    address = parse_relay_url(f"gdrive://{tmp_path}/mount//Escale repo", frozenset({"gdrive"}))
    open_relay(address, plugins.relays).write_bytes("obj", b"1")
    assert (tmp_path / "mount" / "Escale repo" / "obj").read_bytes() == b"1"


def test_local_relay_declares_atomic_rename_and_exclusive_create(
    tmp_path: Path, plugins: Plugins
) -> None:
    relay = open_relay(parse_relay_url(f"file://{tmp_path}/r"), plugins.relays)
    assert relay.capabilities.atomic_rename and relay.capabilities.exclusive_create


def test_stale_temporary_objects_of_killed_writers_are_removed(
    tmp_path: Path, plugins: Plugins
) -> None:
    import os

    relay = open_relay(parse_relay_url(f"file://{tmp_path}/r"), plugins.relays)
    relay.write_bytes("updates/x", b"1")
    stale, fresh = tmp_path / "r" / "updates" / ".tmp-old", tmp_path / "r" / "updates" / ".tmp-new"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"being written")
    os.utime(stale, (1, 1))
    assert relay.list_sizes() == {"updates/x": 1}  # temporaries are never listed
    assert not stale.exists() and fresh.exists()  # only the old one is a leftover


def test_wait_on_error_codes_are_retried_others_are_not(plugins: Plugins) -> None:
    from escale_core.errors import RelayError

    relay = open_relay(parse_relay_url(f"memory://b-{uuid.uuid4().hex}/r"), plugins.relays)
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError(75, "value too large (a made-up transient code)")
        return "done"

    with pytest.raises(RelayError):
        relay.retry("probing", flaky)  # type: ignore[attr-defined]
    assert len(attempts) == 1
    relay.wait_on_error = frozenset({75})
    attempts.clear()
    assert relay.retry("probing", flaky) == "done"  # type: ignore[attr-defined]
    assert len(attempts) == 2


def test_fsspec_protocols_are_read_without_importing_fsspec() -> None:
    code = (
        "import sys, importlib, escale_relay_fsspec as p\n"
        "table = p.fsspec_protocols()\n"
        "assert 'fsspec' not in sys.modules, 'fsspec was imported'\n"
        "r = importlib.import_module('fsspec.registry')\n"
        "assert table == {k: dict(v) for k, v in r.known_implementations.items()}\n"
        "assert p.fsspec_protocols() == table  # the imported table, now fsspec is loaded\n"
        "print(len(table))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 20


def test_a_sync_through_a_local_relay_never_imports_fsspec(tmp_path: Path) -> None:
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "f").write_bytes(b"x")
    config = tmp_path / "escale.toml"
    config.write_text(
        f'state_dir = "{tmp_path}/state"\n[s]\npath = "{tmp_path}/A"\n'
        f'relay = "{tmp_path}/R"\nencryption = "plain"\n'
    )
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['escale', '-c', {str(config)!r}, '-q', 'sync', 's']\n"
        "try:\n"
        "    runpy.run_module('escale_core', run_name='__main__')\n"
        "finally:\n"
        "    print('fsspec' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (tmp_path / "R" / "escale.json").exists(), done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
