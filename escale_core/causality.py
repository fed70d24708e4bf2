"""Which version of a path wins: decisions from version vectors, the same on every client.

A version of a path is its content (or a deletion) and three facts fixed by the client that
made it: its *dot* (that client's id and the number of the update that published it), its
*context* (the version vector of everything it had seen of the path, dots included: dotted
version vectors, Preguiça et al., 2010) and its *generation* (one more than the version it
replaced). A pull compares each incoming version with the version this client's index holds:

* the local version has seen the incoming one's dot: nothing new;
* the incoming version has seen the local one's dot: it replaces it (a fast-forward);
* neither: they were made independently: a **conflict**, unless both hold the same content
  (or are both deletions).

Concurrent versions are ordered by one total order that every client computes alike:
the higher generation, then a file before a deletion (an edit is not lost to a concurrent
delete), then the later recorded mtime, then the greater author name, checksum, author id and
dot. The winner keeps the path; a losing file is kept as a conflict copy named after its own
author and mtime (a losing deletion leaves nothing to keep). The generation comes first because
it makes the winner's rank grow with every decision: a version that replaces the winner is
always of a higher generation than every version that lost to it, so a loser never comes back,
and the order in which a client meets the versions does not change what it ends with. Without
it, a deletion that replaced one side of a conflict would win or lose depending on which side a
client saw first.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Optional

from .local import fit_name
from .vectors import Vector


@dataclass(frozen=True)
class Version:
    """One version of a path, as a manifest or the local index knows it.

    :param vector: its context: everything it had seen of the path.
    :param author: the client id that made it.
    :param name: that client's name.
    :param mtime_ns: its recorded modification time (of the deletion, for a tombstone).
    :param checksum: its content's checksum; ``None`` for a deletion.
    :param dot: the number of the author's update that made it.
    :param gen: its generation: one more than the version it replaced (1 for a new file).
    """

    vector: Vector
    author: str
    name: str
    mtime_ns: int
    checksum: Optional[str]
    dot: int
    gen: int = 1

    @property
    def deleted(self) -> bool:
        """Whether this version is a deletion."""
        return self.checksum is None

    def has_seen(self, other: Version) -> bool:
        """Whether this version's context holds the event that made ``other``."""
        return self.vector.get(other.author, 0) >= other.dot

    def rank(self) -> tuple[int, bool, int, str, str, str, int]:
        """The total order among concurrent versions (greater wins; different versions never
        tie: the dot comes last)."""
        return (
            self.gen, not self.deleted, self.mtime_ns, self.name, self.checksum or "",
            self.author, self.dot,
        )  # fmt: skip

    def same_content(self, other: Version) -> bool:
        """Both hold the same bytes, or both are deletions."""
        return self.checksum == other.checksum


class Outcome(enum.Enum):
    """What a pull does with an incoming version."""

    IGNORE = "ignore"  # already known
    TAKE = "take"  # the incoming version goes to the path
    MERGE = "merge"  # same content, concurrent: the path keeps its bytes, the winner's record
    KEEP_LOCAL = "keep local"  # the local version stays


@dataclass(frozen=True)
class Resolution:
    """The decision for one path.

    :param outcome: what happens.
    :param vector: the context of the path's version afterwards (the winner's).
    :param winner: the version the path has afterwards.
    :param loser: a file version that lost a conflict and is kept as a conflict copy.
    :param concurrent: decided between concurrent versions: the result is news for clients
        that saw only one side, so the client that decided it announces it.
    """

    outcome: Outcome
    vector: Vector
    winner: Version
    loser: Optional[Version] = None
    concurrent: bool = False


def reconcile(local: Optional[Version], incoming: Version) -> Resolution:
    """Decide between the local index's version of a path and an incoming one."""
    if local is None:
        return Resolution(Outcome.TAKE, dict(incoming.vector), incoming)
    if local.has_seen(incoming):
        return Resolution(Outcome.IGNORE, dict(local.vector), local)
    if incoming.has_seen(local):  # it replaces what it has seen
        return Resolution(Outcome.TAKE, dict(incoming.vector), incoming)
    winner = max(local, incoming, key=Version.rank)
    vector = dict(winner.vector)
    if local.same_content(incoming):
        return Resolution(Outcome.MERGE, vector, winner, None, True)
    loser = incoming if winner is local else local
    kept = None if loser.deleted else loser  # a losing deletion leaves nothing to keep
    if winner is local:
        return Resolution(Outcome.KEEP_LOCAL, vector, local, kept, True)
    return Resolution(Outcome.TAKE, vector, incoming, kept, True)


def conflict_copy(path: str, loser: Version) -> tuple[str, Version]:
    """The path and version of the conflict copy that keeps ``loser``: named after its author
    and mtime, with its own dot as its only context (the same on every client)."""
    copy = Version(
        {loser.author: loser.dot}, loser.author, loser.name, loser.mtime_ns, loser.checksum,
        loser.dot, loser.gen,
    )  # fmt: skip
    return conflict_name(path, loser.mtime_ns, loser.name), copy


def conflict_name(path: str, mtime_ns: int, client: str) -> str:
    """``dir/name.sync-conflict-<YYYYMMDD-HHMMSS>-<client>.ext`` for the losing version."""
    folder, _, name = path.rpartition("/")
    stem, dot_, ext = name.rpartition(".")
    if not stem:  # no extension (or a leading-dot name, which is never synced anyway)
        stem, dot_, ext = name, "", ""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(mtime_ns // 1_000_000_000))
    safe_client = "".join(c if c.isalnum() or c in "-_" else "_" for c in client)[:40]
    renamed = fit_name(stem, f".sync-conflict-{stamp}-{safe_client}", f"{dot_}{ext}")
    return f"{folder}/{renamed}" if folder else renamed
