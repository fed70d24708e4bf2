"""The relay as one listing shows it, and what a round removes from it and from the index:
data objects left without their manifest, updates enough pullers acknowledged, and tombstones
every known client has seen."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

from .history import LocalState
from .manifest import ClientState
from .repository import Repository, update_name

_UPDATE = re.compile(r"^updates/([0-9a-f]{32})/([0-9]{10})$")
_DATA = re.compile(r"^data/([0-9a-f]{32})/([0-9]{10})/[0-9]{6}$")
_CLIENT = re.compile(r"^clients/([0-9a-f]{32})$")


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
) -> None:
    """Drop the tombstones every known client has seen (a client that knows of a deletion
    never sends back what it deleted), once older than ``min_age`` seconds (until then an
    update older than the deletion, still on the relay for more pullers, could bring the file
    to a client that joins later), unless the next push still announces them."""
    if not state.tombstones:
        return
    clients = listing.clients | set(listing.updates) | {me}
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


def collect_updates(
    repo: Repository,
    state: LocalState,
    listing: Listing,
    states: dict[str, ClientState],
    me: str = "",
    my_pullers: Optional[int] = None,
) -> int:
    """Delete the updates that enough pullers (and every client a full update was for)
    acknowledged; return how many objects went. The manifest goes first, then its data (a
    crash in between leaves orphans, removed by the next round of a client that read it).

    :param my_pullers: this client's ``pullers`` now: its own updates need no more pullers
        than that (a lowered value frees what it allows at once)."""
    known = state.get_meta("known", {})
    deleted = 0
    for cid, seqs in listing.updates.items():
        for seq in seqs:
            info = known.get(f"{cid}/{seq}")
            if info is None:
                continue
            pullers, snapshot_for = info
            if cid == me and my_pullers is not None:
                pullers = min(pullers, my_pullers)
            acked = {c for c, s in states.items() if c != cid and s.acks.get(cid, 0) >= seq}
            if len(acked) >= pullers and set(snapshot_for) <= acked:
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
