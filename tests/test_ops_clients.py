"""``escale clients list`` and ``escale clients forget``, with real ``escale`` processes on a
``file://`` relay and on a real SFTP server: who joined, what each has not acknowledged, and
retiring a client that will never come back so that what only it was waiting for is freed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from escale_core.collect import required_pullers
from escale_core.config import load_config
from escale_core.crypto import new_kdf
from escale_core.engine import Engine
from escale_core.errors import IntegrityError
from escale_core.history import LocalState
from escale_core.manifest import Retirement
from escale_core.plugins import get_plugins
from escale_core.session import open_section_relay, open_section_repository, options_for

from .clients import PASSPHRASE, Client, Cluster, add, network_cluster, same_tree, tree
from .servers import RelayServer
from .test_ops_keys import master_key, put_header, relay_header, wrapped

Join = Callable[[str], Client]


@pytest.fixture(params=["file", "sftp"])
def join(request: pytest.FixtureRequest, tmp_path: Path, isolated_env: dict[str, str]) -> Join:
    """Add a client (``pullers = 2``) to a fresh repository on a ``file://`` or SFTP relay."""
    if request.param == "file":
        cluster = Cluster(tmp_path / "clients", f"file://{tmp_path / 'relay'}", isolated_env)
        return lambda name: cluster.add(name, extra="pullers = 2")
    server: RelayServer = request.getfixturevalue("sftp_server")
    network = network_cluster(server, tmp_path, isolated_env)
    return lambda name: add(network, server, name, "pullers = 2")


def escale(client: Client, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``escale ARGS`` as ``client`` (standard input is not a terminal)."""
    return subprocess.run(
        client.command(*args),
        capture_output=True,
        text=True,
        env=client.env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def listed(client: Client) -> dict[str, dict[str, Any]]:
    """``escale clients list shared --json``, by client name."""
    run = escale(client, "clients", "list", "shared", "--json")
    assert run.returncode == 0, run.stderr
    return {entry["name"]: entry for entry in json.loads(run.stdout)}


def forget(client: Client, name: str) -> None:
    run = escale(client, "clients", "forget", "shared", name, "--yes")
    assert run.returncode == 0, run.stderr
    assert f"retired {name}" in run.stdout


def relay_objects(client: Client) -> set[str]:
    """The names of the objects of the client's relay (any backend)."""
    plugins = get_plugins()
    relay = open_section_relay(load_config(client.config, plugins).section("shared"), plugins)
    try:
        return set(relay.list_sizes(""))
    finally:
        relay.close()


def client_id(client: Client, name: str) -> str:
    plugins = get_plugins()
    section = load_config(client.config, plugins).section("shared")
    relay = open_section_relay(section, plugins)
    try:
        return open_section_repository(section, relay, plugins, create=False).client_id(name)
    finally:
        relay.close()


def updates(client: Client) -> set[str]:
    return {name for name in relay_objects(client) if name.startswith(("updates/", "data/"))}


def full_updates_for(client: Client, name: str, pushers: tuple[str, ...]) -> set[str]:
    """Which of ``pushers`` have a full update on the relay that ``name`` asked for."""
    plugins = get_plugins()
    section = load_config(client.config, plugins).section("shared")
    relay = open_section_relay(section, plugins)
    try:
        repo = open_section_repository(section, relay, plugins, create=False)
        found = set()
        names = {repo.client_id(pusher): pusher for pusher in pushers}
        for object_name in relay.list_sizes("updates"):
            _, cid, seq = object_name.split("/")
            manifest = repo.read_manifest(cid, int(seq))
            if repo.client_id(name) in manifest.snapshot_for:
                found.add(names.get(cid, cid))
        return found
    finally:
        relay.close()


def state_dir(client: Client) -> Path:
    return client.config.parent / "state"


def tombstones(client: Client) -> set[str]:
    state = LocalState("shared", state_dir(client))
    try:
        return set(state.tombstones)
    finally:
        state.close()


def round_forgetting_tombstones_now(client: Client) -> None:
    """One round (in this process) that forgets tombstones as soon as every known client has
    seen them (the default waits 30 days, which no setting shortens)."""
    plugins = get_plugins()
    section = load_config(client.config, plugins).section("shared")
    relay = open_section_relay(section, plugins)
    state = LocalState("shared", state_dir(client))
    try:
        repo = open_section_repository(section, relay, plugins, state.get_meta("header"))
        options = options_for(section)
        options.tombstone_age = 0
        report = Engine(repo, state, options, plugins.checksums).run_round()
        assert not report.errors, report.errors
    finally:
        state.close()
        relay.close()


def test_forget_frees_what_waited_only_for_a_gone_client_and_nothing_is_lost(join: Join) -> None:
    alpha, bravo, charlie = join("alpha"), join("bravo"), join("charlie")
    alpha.write("common.txt", "for everyone")
    for client in (alpha, bravo, charlie, alpha, bravo, charlie):
        client.sync()
    ida, idc = client_id(alpha, "alpha"), client_id(alpha, "charlie")

    # charlie stops syncing: alpha's next update waits for it (pullers = 2)
    alpha.write("new1.txt", "one")
    for client in (alpha, bravo, alpha):
        client.sync()
    assert f"updates/{ida}/0000000002" in relay_objects(alpha)
    seen = listed(alpha)
    assert set(seen) == {"alpha", "bravo", "charlie"}
    assert [seen[n]["me"] for n in ("alpha", "bravo", "charlie")] == [True, False, False]
    assert seen["alpha"]["last_seq"] == 2 and seen["alpha"]["mode"] == "pushes"
    assert seen["charlie"]["pending"] == {"alpha": [2]}
    assert seen["bravo"]["pending"] == {}
    assert seen["charlie"]["holds"]["updates"] == 1 and seen["charlie"]["holds"]["bytes"] > 0
    assert seen["bravo"]["holds"]["updates"] == 0
    assert seen["charlie"]["last_seen"] <= seen["alpha"]["last_seen"]

    # charlie comes once more, publishes a file nobody else has, and is gone for good
    charlie.write("only-charlie.txt", "nowhere else")
    charlie.sync()
    alpha.write("new2.txt", "two")
    alpha.sync()
    seen = listed(alpha)
    assert seen["charlie"]["last_seq"] == 1
    assert seen["bravo"]["pending"] == {"alpha": [3], "charlie": [1]}
    assert seen["bravo"]["holds"]["updates"] == 1  # charlie's update: alpha has it already
    charlie_folder = tree(charlie.root)

    forget(alpha, "charlie")
    objects = relay_objects(alpha)
    assert f"retired/{idc}" in objects and f"clients/{idc}" not in objects
    alpha.sync()
    # its own update stays: bravo has not read it yet
    assert f"updates/{idc}/0000000001" in relay_objects(alpha)
    seen = listed(alpha)
    assert seen["charlie"]["retired"]["by"] == "alpha" and seen["charlie"]["mode"] is None
    status = json.loads(escale(alpha, "status", "shared", "--json").stdout)["shared"]
    assert status["clients_missing"] == 0, "a retired client is no puller to wait for"
    for client in (bravo, alpha, bravo):
        client.sync()
    assert updates(alpha) == set(), "every update was collected once bravo read it"
    assert same_tree(alpha.root, bravo.root)
    assert (bravo.root / "only-charlie.txt").read_text() == "nowhere else"
    assert sorted(tree(alpha.root)) == ["common.txt", "new1.txt", "new2.txt", "only-charlie.txt"]

    # the retired client comes back with its old local state: one clear line, nothing touched
    run = charlie.sync(check=False)
    assert run.returncode == 1
    assert (
        "[shared] this client (charlie) was retired from the repository by 'escale clients "
        "forget' (run by alpha) on "
    ) in run.stderr
    assert "remove its local state" in run.stderr and str(state_dir(charlie)) in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert tree(charlie.root) == charlie_folder
    assert f"clients/{idc}" not in relay_objects(alpha)

    # with a fresh local state it rejoins as a new client
    shutil.rmtree(state_dir(charlie))
    rejoin = charlie.sync(check=False)
    assert "waiting for a full re-send from alpha, bravo" in rejoin.stdout, rejoin.stderr
    objects = relay_objects(alpha)
    assert f"retired/{idc}" not in objects and f"clients/{idc}" in objects
    for client in (alpha, bravo, charlie, alpha, bravo, charlie):
        client.sync()
    assert same_tree(alpha.root, charlie.root) and same_tree(alpha.root, bravo.root)
    assert listed(bravo)["charlie"]["retired"] is None


def test_a_full_update_and_a_tombstone_waiting_for_a_forgotten_client_are_freed(
    cluster: Cluster,
) -> None:
    alpha, bravo, charlie = (cluster.add(n, extra="pullers = 2") for n in ("a", "b", "c"))
    alpha.write("kept.txt", "kept")
    alpha.write("deleted.txt", "to be deleted")
    for client in (alpha, bravo, charlie, alpha, bravo, charlie):
        client.sync()
    # charlie loses its local state, asks everyone for a full update, and vanishes
    shutil.rmtree(state_dir(charlie))
    assert "waiting for a full re-send from a, b" in charlie.sync(check=False).stdout
    assert sorted(listed(alpha)["c"]["want_full"]) == ["a", "b"]
    for client in (alpha, bravo):  # each serves its full update
        client.sync()
    (alpha.root / "deleted.txt").unlink()
    for client in (alpha, bravo, alpha, bravo):
        client.sync()
    assert full_updates_for(alpha, "c", ("a", "b")) == {"a", "b"}, "they wait for charlie"
    round_forgetting_tombstones_now(alpha)
    assert tombstones(alpha) == {"deleted.txt"}, "charlie has not seen the deletion"

    # the relay replays charlie's state after it was retired: it must change nothing
    relay_folder = Path(cluster.relay.removeprefix("file://"))
    idc = client_id(alpha, "c")
    replayed = (relay_folder / "clients" / idc).read_bytes()
    forget(alpha, "c")
    (relay_folder / "clients" / idc).write_bytes(replayed)
    assert listed(alpha)["c"]["retired"]["by"] == "a"
    for client in (alpha, bravo, alpha):
        client.sync()
    assert updates(alpha) == set(), "the full updates charlie asked for were collected"
    round_forgetting_tombstones_now(alpha)
    round_forgetting_tombstones_now(bravo)
    assert tombstones(alpha) == tombstones(bravo) == set()
    assert same_tree(alpha.root, bravo.root)
    assert sorted(tree(alpha.root)) == ["kept.txt"]


def test_forget_refuses_this_client_an_unknown_name_and_an_unconfirmed_retirement(
    cluster: Cluster,
) -> None:
    alpha, bravo = cluster.add("alpha"), cluster.add("bravo")
    for client in (alpha, bravo):
        client.sync()
    before = relay_objects(alpha)

    run = escale(alpha, "clients", "forget", "shared", "alpha", "--yes")
    assert run.returncode == 2
    assert "'alpha' is this client: a client cannot forget itself" in run.stderr

    run = escale(alpha, "clients", "forget", "shared", "zulu", "--yes")
    assert run.returncode == 2
    assert "no client named 'zulu' in the repository (its clients: alpha, bravo)" in run.stderr

    run = escale(alpha, "clients", "forget", "shared", "bravo")
    assert run.returncode == 2
    assert "confirm with --yes" in run.stderr and "nothing was changed" in run.stderr
    assert relay_objects(alpha) == before

    forget(alpha, "bravo")
    run = escale(alpha, "clients", "forget", "shared", "bravo", "--yes")
    assert run.returncode == 0 and "bravo was already retired (by alpha" in run.stdout
    run = escale(alpha, "clients", "list", "shared")
    assert run.returncode == 0
    assert "alpha (this client)" in run.stdout and "bravo: retired by alpha" in run.stdout


def test_a_client_state_copied_to_a_retirement_record_is_refused_and_retires_nobody(
    cluster: Cluster,
) -> None:
    alpha, bravo = cluster.add("alpha"), cluster.add("bravo")
    for client in (alpha, bravo):
        client.sync()
    relay_folder = Path(cluster.relay.removeprefix("file://"))
    idb = client_id(alpha, "bravo")
    (relay_folder / "retired").mkdir()
    # the relay forges a retirement from bravo's own sealed state (same key, same kind)
    shutil.copy(relay_folder / "clients" / idb, relay_folder / "retired" / idb)
    run = bravo.sync(check=False)
    assert run.returncode == 1
    assert f"relay object retired/{idb}: aes-256-gcm: authentication failed" in run.stderr
    assert "was retired" not in run.stderr
    assert listed(alpha)["bravo"]["retired"] is None


def test_a_retirement_record_with_an_impossible_time_is_refused() -> None:
    good = Retirement("phone", 3, 1_800_000_000.0, "laptop")
    assert Retirement.decode(good.encode()) == good
    for bad in (b'"time": Infinity', b'"time": -1', b'"time": "today"'):
        blob = good.encode().replace(b'"time": 1800000000.0', bad)
        with pytest.raises(IntegrityError, match="malformed retirement record"):
            Retirement.decode(blob)


@pytest.mark.parametrize(
    ("pullers", "others", "retired", "need"),
    [
        (2, 2, 0, 2),  # nobody retired: pullers as set
        (3, 2, 0, 3),  # still waits for one more client to join
        (2, 1, 1, 1),  # three clients, one retired: the one left is enough
        (3, 1, 1, 2),  # it waited for a fourth client: it still does
        (2, 3, 1, 2),  # enough clients remain: pullers as set
        (1, 2, 1, 1),
        (0, 1, 1, 0),
    ],
)
def test_a_retired_client_no_longer_counts_as_a_puller(
    pullers: int, others: int, retired: int, need: int
) -> None:
    assert required_pullers(pullers, others, retired) == need


OPERATIONS = {
    "clients list": ("clients", "list", "shared"),
    "clients forget": ("clients", "forget", "shared", "b", "--yes"),
    "migrate": ("migrate", "shared", "file://{tmp}/new-relay"),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_operations_check_the_header_against_the_kept_key_as_sync_does(
    cluster: Cluster, tmp_path: Path, operation: str
) -> None:
    """A header re-wrapped around the same key (``escale key passwd`` with a stronger KDF)
    is followed; one wrapping another key with the same passphrase (a replaced header) is
    refused, as the sync refuses it."""
    a = cluster.add("a")
    a.sync()
    cluster.add("b").sync()
    a.sync()
    header = relay_header(cluster)
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in OPERATIONS[operation]]
    replaced = wrapped(header, os.urandom(32), PASSPHRASE, new_kdf())
    put_header(cluster, replaced)
    refused = escale(a, *args)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert "holds another key than the one this client joined with" in line
    assert a.sync(check=False).returncode == 1  # the sync refuses it alike
    stronger = {**new_kdf(), "iterations": 3}
    put_header(cluster, wrapped(header, master_key(header, PASSPHRASE), PASSPHRASE, stronger))
    run = escale(a, *args)
    assert run.returncode == 0, run.stderr
