"""The round's report tells the truth: file bytes up and down counted alike (the bytes on the
wire in their own fields), the relay's size measured after the round, ``sync --json`` and
``status --json`` of one shape, and ``pullers`` above the clients that joined reported."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .clients import Client, Cluster


def relay_size(cluster: Cluster) -> int:
    root = Path(cluster.relay.removeprefix("file://"))
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def sync_json(client: Client) -> dict[str, object]:
    run = client.sync("--json")
    data = json.loads(run.stdout)
    assert list(data) == [client.section]
    return data[client.section]  # type: ignore[no-any-return]


def status_json(client: Client) -> dict[str, object]:
    run = subprocess.run(
        client.command("status", "--json"), capture_output=True, text=True, env=client.env
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert list(data) == [client.section]
    return data[client.section]  # type: ignore[no-any-return]


def test_bytes_up_and_down_count_file_bytes_alike_and_the_wire_apart(cluster: Cluster) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    a.write("text.txt", "compressible " * 10_000)  # 130,000 bytes that zstd shrinks
    a.write("small.txt", "x" * 1000)
    pushed = sync_json(a)
    pulled = sync_json(b)
    assert pushed["bytes_up"] == 131_000
    assert pulled["bytes_down"] == 131_000
    assert 0 < pushed["wire_up"] < 131_000  # compressed, then sealed
    assert pulled["wire_down"] == pushed["wire_up"]


def test_relay_usage_is_measured_after_the_round(cluster: Cluster) -> None:
    a, b = cluster.add("alice"), cluster.add("bob")
    b.sync()
    a.write("big.bin", os.urandom(400_000))  # does not compress
    pushed = sync_json(a)
    assert pushed["relay_usage"] == relay_size(cluster) > 400_000
    pulled = sync_json(b)  # bob is the only puller: the update leaves the relay
    assert pulled["relay_usage"] == relay_size(cluster) < 10_000


def test_sync_and_status_json_are_keyed_by_section_and_a_failed_round_keeps_the_shape(
    cluster: Cluster,
) -> None:
    a = cluster.add("alice")
    report, status = sync_json(a), status_json(a)
    for data in (report, status):
        assert {"relay_usage", "error", "notices", "clients_missing"} <= set(data), data
        assert data["error"] is None
    intruder = cluster.add("mallory", passphrase="not the passphrase")
    run = intruder.sync("--json", check=False)
    assert run.returncode == 1
    failed = json.loads(run.stdout)[intruder.section]
    assert set(failed) == set(report) and failed["error"] and failed["in_sync"] is False


def test_pullers_above_the_clients_that_joined_is_reported_and_lowering_it_frees(
    cluster: Cluster,
) -> None:
    a = cluster.add("alice", extra="pullers = 3")
    b = cluster.add("bob")
    b.sync()
    a.write("doc.txt", "for three pullers")
    report = sync_json(a)
    assert report["clients_missing"] == 2
    assert report["notices"] == [
        "pullers = 3, but 1 other client(s) joined this relay: each update stays on it until "
        "2 more join; set pullers = 1 to free it"
    ]
    assert status_json(a)["clients_missing"] == 2
    b.sync()
    assert relay_size(cluster) > 0 and sync_json(a)["collected"] == 0  # still waits
    a.config.write_text(a.config.read_text().replace("pullers = 3", "pullers = 1"))
    freed = sync_json(a)
    assert freed["collected"] >= 2 and freed["clients_missing"] == 0 and not freed["notices"]
