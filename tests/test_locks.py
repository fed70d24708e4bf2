"""Relay locks: one holder at a time, with or without an atomic create-if-absent."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from escale_core.address import parse_relay_url
from escale_core.locks import LockBusyError, LockLostError, RelayLock
from escale_core.plugins import Plugins
from escale_core.relay import Relay, open_relay


@pytest.fixture(params=["file (exclusive create)", "memory (write, wait, re-list)"])
def relay(request: pytest.FixtureRequest, tmp_path: Path, plugins: Plugins) -> Relay:
    url = (
        f"file://{tmp_path}/r"
        if request.param.startswith("file")
        else f"memory://locks-{uuid.uuid4().hex}/repo"
    )
    return open_relay(parse_relay_url(url), plugins.relays)


def test_a_held_lock_keeps_others_out_until_released(relay: Relay) -> None:
    first = RelayLock(relay, "gc", wait=0, settle=0.05).acquire()
    with pytest.raises(LockBusyError, match="'gc' is held"):
        RelayLock(relay, "gc", wait=0, settle=0.05).acquire()
    first.release()
    second = RelayLock(relay, "gc", wait=0, settle=0.05).acquire()
    second.release()
    assert relay.list("locks") == []


def test_concurrent_claims_have_exactly_one_winner(relay: Relay) -> None:
    winners: list[RelayLock] = []

    def claim() -> None:
        with contextlib.suppress(LockBusyError):
            winners.append(RelayLock(relay, "init", wait=0, settle=0.3).acquire())

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_an_expired_lock_of_a_crashed_holder_is_taken_over(relay: Relay) -> None:
    crashed = RelayLock(relay, "gc", timeout=0.5, wait=0, settle=0.05).acquire()
    crashed.object = None  # the holder dies without releasing
    time.sleep(0.6)
    taker = RelayLock(relay, "gc", wait=2, settle=0.05).acquire()
    assert taker.object is not None
    taker.release()


def test_refresh_pushes_the_expiry_back(relay: Relay) -> None:
    lock = RelayLock(relay, "gc", timeout=100, wait=0, settle=0.05).acquire()
    assert lock.object is not None
    before = json.loads(relay.read_bytes(lock.object))["expires"]
    time.sleep(0.05)
    lock.refresh()
    assert json.loads(relay.read_bytes(lock.object))["expires"] > before
    lock.release()


def _take_over_after_expiry(relay: Relay) -> tuple[RelayLock, RelayLock]:
    """``first`` held the lock, let it expire; ``second`` took it over."""
    first = RelayLock(relay, "gc", timeout=0.3, wait=0, settle=0.05).acquire()
    time.sleep(0.4)
    second = RelayLock(relay, "gc", timeout=100, wait=2, settle=0.05).acquire()
    return first, second


def test_refresh_of_a_lock_another_client_took_over_raises_and_leaves_theirs(
    relay: Relay,
) -> None:
    first, second = _take_over_after_expiry(relay)
    assert second.object is not None
    theirs = relay.read_bytes(second.object)
    with pytest.raises(LockLostError, match=r"relay lock 'gc'.*was lost"):
        first.refresh()
    assert relay.read_bytes(second.object) == theirs
    assert json.loads(theirs)["token"] == second.token
    first.release()  # after a lost lock: nothing left to give back
    assert relay.read_bytes(second.object) == theirs
    second.release()


def test_release_of_a_lock_another_client_took_over_deletes_nothing(relay: Relay) -> None:
    first, second = _take_over_after_expiry(relay)
    assert second.object is not None
    assert first.release() is False
    assert json.loads(relay.read_bytes(second.object))["token"] == second.token
    with pytest.raises(LockBusyError):
        RelayLock(relay, "gc", wait=0, settle=0.05).acquire()
    assert second.release() is True
    assert relay.list("locks") == []


def test_refresh_of_a_lock_removed_from_the_relay_raises(relay: Relay) -> None:
    lock = RelayLock(relay, "gc", wait=0, settle=0.05).acquire()
    assert lock.object is not None
    relay.delete(lock.object)
    with pytest.raises(LockLostError):
        lock.refresh()
    assert relay.list("locks") in ([], ["locks/gc"])
