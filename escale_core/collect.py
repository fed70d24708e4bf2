"""The relay as one listing shows it, and what a round removes from it and from the index:
data objects left without their manifest, updates enough pullers acknowledged, and tombstones
every known client has seen.

A retired client (``retired/<cid>``, written by ``escale clients forget``) is no longer waited
for: not for acknowledgements, full updates it asked for, or tombstones; its own updates stay
until the others acknowledged them."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from .history import LocalState
from .manifest import ClientState
from .repository import Repository, update_name

_UPDATE = re.compile(r"^updates/([0-9a-f]{32})/([0-9]{10})$")
_DATA = re.compile(r"^data/([0-9a-f]{32})/([0-9]{10})/[0-9]{6}$")
_CLIENT = re.compile(r"^clients/([0-9a-f]{32})$")
_RETIRED = re.compile(r"^retired/([0-9a-f]{32})$")


def update_number(name: str) -> Optional[tuple[str, int]]:
    """``(cid, seq)`` of a manifest's object name, or ``None`` for any other name."""
    m = _UPDATE.match(name)
    return (m.group(1), int(m.group(2))) if m else None


@dataclass
class Listing:
    """The relay repository, from one listing."""

    updates: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    data: dict[tuple[str, int], list[str]] = field(default_factory=lambda: defaultdict(list))
    clients: set[str] = field(default_factory=set)
    #: clients retired by ``escale clients forget`` (names only: read the records to trust them)
    retired: set[str] = field(default_factory=set)
    usage: int = 0
    sizes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, sizes: dict[str, int]) -> Listing:
        """Parse names; anything else on the relay is ignored."""
        listing = cls(sizes=sizes)
        for name, size in sizes.items():
            listing.usage += size
            if m := _UPDATE.match(name):
                listing.updates[m.group(1)].append(int(m.group(2)))
            elif m := _DATA.match(name):
                listing.data[(m.group(1), int(m.group(2)))].append(name)
            elif m := _CLIENT.match(name):
                listing.clients.add(m.group(1))
            elif m := _RETIRED.match(name):
                listing.retired.add(m.group(1))
        for seqs in listing.updates.values():
            seqs.sort()
        return listing


def remove_orphans(
    repo: Repository,
    state: LocalState,
    listing: Listing,
    me: str,
    acks: dict[str, int],
    next_seq: int,
) -> None:
    """Delete data without a manifest: this client's crash leftovers (except the data of its
    next update: an interrupted push resumes from it), or leftovers of an interrupted garbage
    collection of an update this client has read. Never the data of an update this client has
    not read: its manifest may only be withheld, or not listed yet."""
    pending = (state.get_meta("pending_push") or {}).get("seq")
    for (cid, seq), names in listing.data.items():
        if seq in listing.updates.get(cid, []) or (cid == me and seq in (next_seq, pending)):
            continue
        if cid == me or seq <= acks.get(cid, 0):
            for name in names:
                repo.relay.delete(name)


def forget_stable_tombstones(
    state: LocalState,
    listing: Listing,
    states: dict[str, ClientState],
    me: str,
    min_age: float,
    retired: frozenset[str] = frozenset(),
) -> None:
    """Drop the tombstones every known client has seen (a client that knows of a deletion
    never sends back what it deleted), once older than ``min_age`` seconds (until then an
    update older than the deletion, still on the relay for more pullers, could bring the file
    to a client that joins later), unless the next push still announces them. A retired
    client is not waited for."""
    if not state.tombstones:
        return
    clients = (listing.clients | set(listing.updates) | {me}) - retired
    if any(cid not in states for cid in clients):
        return  # a client whose knowledge cannot be read may still hold the file
    announced = set(state.get_meta("announce", []))
    oldest = (time.time() - min_age) * 1e9
    for path, mark in list(state.tombstones.items()):
        if path in announced or mark.mtime_ns > oldest:
            continue
        if all(
            cid == mark.author or states[cid].acks.get(mark.author, 0) >= mark.dot
            for cid in clients
        ):
            state.drop_tombstone(path)
    state.commit()


def required_pullers(pullers: int, others: int, retired: int) -> int:
    """How many acknowledgements an update needs: its ``pullers``, but a retired client no
    longer counts as one: never more than the ``others`` that remain (clients other than its
    pusher with a state), unless ``pullers`` was above every client there was (``retired``
    other clients included): then it still waits for the clients expected to join."""
    return min(pullers, max(others, pullers - retired))


def collectable(
    cid: str,
    seq: int,
    info: list[Any],
    states: dict[str, ClientState],
    retired: frozenset[str] = frozenset(),
) -> bool:
    """Whether update ``seq`` of ``cid`` may go: enough pullers (``states``, of the clients
    not retired) acknowledged it, among them every one its full update was for (a retired
    one is not waited for). ``info`` is ``[pullers, snapshot_for]`` from its manifest."""
    pullers, snapshot_for = info
    others = sum(1 for c in states if c != cid)
    need = required_pullers(pullers, others, len(retired - {cid}))
    acked = {c for c, s in states.items() if c != cid and s.acks.get(cid, 0) >= seq}
    return len(acked) >= need and set(snapshot_for) - retired <= acked


def collect_updates(
    repo: Repository,
    state: LocalState,
    listing: Listing,
    states: dict[str, ClientState],
    me: str = "",
    my_pullers: Optional[int] = None,
    retired: frozenset[str] = frozenset(),
) -> int:
    """Delete the updates that enough pullers (and every client a full update was for)
    acknowledged; return how many objects went. The manifest goes first, then its data (a
    crash in between leaves orphans, removed by the next round of a client that read it).

    :param states: the client states of the clients that are not retired.
    :param my_pullers: this client's ``pullers`` now: its own updates need no more pullers
        than that (a lowered value frees what it allows at once).
    :param retired: the retired clients (see :func:`collectable`)."""
    known = state.get_meta("known", {})
    deleted = 0
    for cid, seqs in listing.updates.items():
        for seq in seqs:
            info = known.get(f"{cid}/{seq}")
            if info is None:
                continue
            if cid == me and my_pullers is not None:
                info = [min(info[0], my_pullers), info[1]]
            if collectable(cid, seq, info, states, retired):
                repo.relay.delete(update_name(cid, seq))
                for name in listing.data.get((cid, seq), []):
                    repo.relay.delete(name)
                deleted += 1 + len(listing.data.get((cid, seq), []))
                known.pop(f"{cid}/{seq}")
    newest = {c: max(seqs) for c, seqs in listing.updates.items() if seqs}
    present = {f"{c}/{s}" for c, seqs in listing.updates.items() for s in seqs}

    def still_there(key: str) -> bool:
        cid, _, seq = key.partition("/")
        return key in present or int(seq) > newest.get(cid, 0)  # pushed after the listing

    state.set_meta("known", {k: v for k, v in known.items() if still_there(k)})
    return deleted
