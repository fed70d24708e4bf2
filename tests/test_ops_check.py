"""``escale check``: a healthy repository is clean; damage (a flipped byte, a truncated or
missing object) exits 1 naming the object; orphans, leftovers and unknown objects are warnings.
Each test runs over a ``file://`` relay and an SFTP server, with real ``escale`` processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .clients import Backend, Client, Cluster, backend, converge, open_relay_of, run_escale

BACKENDS = ["file", "sftp"]


@pytest.fixture(params=BACKENDS)
def relay_backend(
    request: pytest.FixtureRequest, tmp_path: Path, isolated_env: dict[str, str]
) -> Backend:
    return backend(request.param, request, tmp_path, isolated_env)


def one_client_with_updates(on: Backend) -> Client:
    """Client ``a`` alone, with two updates of random (incompressible) files on the relay:
    nobody acknowledges them, so they stay."""
    a = on.add("a")
    a.write("one.bin", os.urandom(3000))
    a.write("sub/two.bin", os.urandom(70_000))  # more than one 64 KiB segment
    a.sync()
    a.write("three.bin", os.urandom(500))
    a.sync()
    return a


def names(client: Client, prefix: str) -> list[str]:
    relay = open_relay_of(client)
    try:
        return relay.list(prefix)
    finally:
        relay.close()


def rewrite(client: Client, name: str, change: str) -> None:
    """Damage relay object ``name``: ``flip`` a byte in its middle, ``truncate`` its last
    byte, or ``delete`` it."""
    relay = open_relay_of(client)
    try:
        if change == "delete":
            relay.delete(name)
            return
        data = bytearray(relay.read_bytes(name))
        if change == "flip":
            data[len(data) // 2] ^= 0x01
        else:
            del data[-1]
        relay.write_bytes(name, bytes(data))
    finally:
        relay.close()


def check(client: Client, *args: str) -> tuple[int, list[str]]:
    run = run_escale(client, "check", client.section, *args)
    assert "internal error" not in run.stderr, run.stderr
    return run.returncode, run.stdout.splitlines() + run.stderr.splitlines()


def test_check_is_clean_on_a_healthy_repository_of_three_clients(relay_backend: Backend) -> None:
    clients = [relay_backend.add(name) for name in ("a", "b", "c")]
    for client in clients:
        client.write(f"{client.name}.txt", f"from {client.name}\n")
        client.write(f"{client.name}/big.bin", os.urandom(100_000))
    converge(clients)
    for client in clients:
        status, lines = check(client, "--read-data")
        assert status == 0, lines
        assert lines[-1].endswith("0 damage, 0 orphan, 0 leftover, 0 unknown: ok"), lines
        assert "3 clients" in lines[-1]
    run = run_escale(clients[0], "check", "shared", "--json")
    report = json.loads(run.stdout)
    assert run.returncode == 0 and report["damaged"] is False and report["clients"] == 3


def test_a_flipped_byte_in_a_data_object_is_found_with_read_data_only(
    relay_backend: Backend,
) -> None:
    a = one_client_with_updates(relay_backend)
    target = names(a, "data")[0]
    rewrite(a, target, "flip")
    status, lines = check(a)
    assert status == 0, lines
    status, lines = check(a, "--read-data")
    assert status == 1, lines
    found = [line for line in lines if line.startswith(f"[shared] damage: relay object {target}")]
    assert found and "does not authenticate" in found[0]
    assert "'escale fix shared --read-data' deletes it" in found[0]
    assert "1 damage" in lines[-1]


def test_a_flipped_byte_in_a_manifest_is_found_without_read_data(relay_backend: Backend) -> None:
    a = one_client_with_updates(relay_backend)
    target = names(a, "updates")[0]
    rewrite(a, target, "flip")
    status, lines = check(a)
    assert status == 1, lines
    assert any(
        line.startswith(f"[shared] damage: relay object {target}: unreadable manifest")
        for line in lines
    ), lines


def test_a_truncated_and_a_missing_data_object_are_damage_naming_each(
    relay_backend: Backend,
) -> None:
    a = one_client_with_updates(relay_backend)
    first, second = names(a, "data")[:2]
    rewrite(a, first, "truncate")
    rewrite(a, second, "delete")
    status, lines = check(a)
    assert status == 1, lines
    damage = "\n".join(line for line in lines if "damage: relay object" in line)
    assert f"{first}: " in damage and "truncated" in damage
    assert f"{second}: missing" in damage
    assert "2 damage" in lines[-1]


def test_orphans_leftovers_and_unknown_objects_are_warnings(relay_backend: Backend) -> None:
    a = one_client_with_updates(relay_backend)
    manifest = names(a, "updates")[0]
    orphans = names(a, manifest.replace("updates/", "data/"))
    rewrite(a, manifest, "delete")  # as a garbage collection killed between its deletions
    relay = open_relay_of(a)
    try:
        leftover = "data/.tmp-" + "0" * 32
        relay.fs.pipe_file(relay._path(leftover), b"half an object")
        relay.write_bytes("notes.txt", b"not ours")
        cid = relay.list("clients")[0].split("/")[1]
        pending = f"data/{cid}/9999999999/000000"  # as a push going on: no manifest yet
        relay.write_bytes(pending, b"a data object before its manifest")
    finally:
        relay.close()
    status, lines = check(a)
    assert status == 0, lines
    assert any(
        line.startswith(
            f"[shared] orphan: relay object {pending}: data of update 9999999999, not published yet"
        )
        and ": kept;" in line
        for line in lines
    ), lines
    for orphan in orphans:
        assert any(
            line.startswith(f"[shared] orphan: relay object {orphan}: data of update")
            and "escale fix shared' removes it" in line
            for line in lines
        ), lines
    assert f"[shared] leftover: relay object {leftover}: temporary object" in "\n".join(lines)
    assert any(line.startswith("[shared] unknown: relay object notes.txt") for line in lines)
    assert lines[-1].endswith(f"0 damage, {len(orphans) + 1} orphan, 1 leftover, 1 unknown: ok")


def test_check_writes_nothing_to_the_relay(relay_backend: Backend) -> None:
    a = one_client_with_updates(relay_backend)
    rewrite(a, names(a, "data")[0], "truncate")
    before = _sizes(a)
    assert check(a, "--read-data")[0] == 1
    assert _sizes(a) == before


def _sizes(client: Client) -> dict[str, int]:
    relay = open_relay_of(client)
    try:
        return relay.list_sizes("")
    finally:
        relay.close()


@pytest.mark.parametrize("kind", ["file", "sftp", "webdav", "ftp", "s3"])
def test_every_relay_lists_its_temporary_objects_apart_for_check(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    a = backend(kind, request, tmp_path, isolated_env).add("a")
    relay = open_relay_of(a)
    try:
        relay.write_bytes("data/x/0000000001/000000", b"an object")
        temp = "data/x/0000000001/.tmp-" + "2" * 32
        relay.fs.pipe_file(relay._path(temp), b"half an object")
        assert relay.list("") == ["data/x/0000000001/000000"]
        assert relay.temp_objects("") == [temp]
        relay.delete(temp)
        assert relay.temp_objects("") == []
    finally:
        relay.close()


def test_check_of_a_relay_folder_without_a_repository_says_so_in_one_line(
    cluster: Cluster,
) -> None:
    a = cluster.add("a")
    run = run_escale(a, "check", "shared")
    assert run.returncode == 1
    assert "no repository there yet" in run.stderr and "internal error" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_check_and_fix_accept_a_header_rewrapped_by_key_passwd_on_another_client(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster.add("a"), cluster.add("b")
    a.write("one.txt", "one\n")
    a.sync()
    b.sync()
    new = tmp_path / "new.key"
    new.write_text("a brand new passphrase for the repository\n")
    assert (
        run_escale(a, "key", "passwd", "shared", "--new-passphrase-file", str(new)).returncode == 0
    )
    (b.config.parent / "key").write_text(new.read_text())  # b's user copies the new one
    status, lines = check(b)
    assert status == 0, lines
    assert run_escale(b, "fix", "shared").returncode == 0
    c = cluster.add("c", passphrase=new.read_text().strip())
    c.sync(check=False)
    assert (c.root / "one.txt").read_text() == "one\n"


def test_a_relay_object_name_with_control_characters_is_shown_escaped(
    tmp_path: Path, isolated_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """A hostile relay names an object with a newline and a terminal escape: check prints it
    escaped, on one line, never sending the escape to the terminal."""
    on = backend("file", request, tmp_path, isolated_env)
    a = one_client_with_updates(on)
    relay = open_relay_of(a)
    try:
        relay.write_bytes("evil\n\x1b[2Jname", b"not ours")
    finally:
        relay.close()
    status, lines = check(a)
    assert status == 0, lines
    assert "[shared] unknown: relay object evil\\n\\x1b[2Jname: " in "\n".join(lines), lines
    assert not any("\x1b" in line for line in lines)
