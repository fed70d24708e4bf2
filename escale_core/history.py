"""What a client remembers between rounds, in its section's SQLite database.

Per file: the last seen stat with its checksum (so an unchanged tree is never re-read), the
checksum of the version last agreed with the relay (``synced``: the base of the next change,
and the version a tombstone may delete), and where that version came from (``origin``).
Rows are loaded on first use and written back in one transaction; an idle round loads none
(see :meth:`LocalState.unchanged`).
"""

from __future__ import annotations

import json
import marshal
import math
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

from .local import FileStat
from .state import open_state


class FileRecord(NamedTuple):
    """One row of the ``files`` table (a named tuple: 100,000 of them load in a blink).

    ``(size, mtime_ns, inode, checksum)`` is the checksum cache; ``synced`` the checksum of
    the version last agreed with the relay (``None``: never synced); ``version`` what that
    version has seen (its vector, JSON, :mod:`escale_core.vectors`), ``author`` the client id
    that made its content in its update ``dot``, ``origin`` that client's name and ``vmtime``
    its recorded mtime (the one in the manifest, which orders conflicts the same way on every
    client).
    """

    size: int
    mtime_ns: int
    inode: int
    checksum: Optional[str]
    synced: Optional[str]
    origin: Optional[str]
    version: Optional[str] = None
    author: Optional[str] = None
    vmtime: Optional[int] = None
    dot: Optional[int] = None
    gen: Optional[int] = None

    def matches(self, info: FileStat) -> bool:
        """Whether ``info`` shows the file unchanged since this record (checksum still valid)."""
        return self[:3] == info


class Tombstone(NamedTuple):
    """A deleted file's version (a row of ``tombstones``): kept, and sent in full updates,
    until every known client has seen the deletion, so nobody brings the file back."""

    version: str
    author: str
    origin: str
    mtime_ns: int
    dot: int
    gen: int


class LocalState:
    """The state database of one section.

    The ``files`` rows are loaded on first use: an idle round compares its scan with the
    *stat snapshot* instead (:meth:`unchanged`), one blob of every file's (size, mtime_ns,
    inode), written when every known file is settled, and dropped as soon as a row changes.

    :param section: the section name.
    :param directory: the state folder.
    """

    def __init__(self, section: str, directory: Path) -> None:
        self.db: sqlite3.Connection = open_state(section, directory)
        self._files: Optional[dict[str, FileRecord]] = None
        self._dirty: set[str] = set()
        self._tombstones: Optional[dict[str, Tombstone]] = None
        self._dirty_tombstones: set[str] = set()

    @property
    def files(self) -> dict[str, FileRecord]:
        """Every known file's record, by path (loaded from the database on first use)."""
        if self._files is None:
            new = tuple.__new__  # without FileRecord's Python-level __new__: 2x faster
            rows = self.db.execute(
                "SELECT path, size, mtime_ns, inode, checksum, synced, origin, version, author, "
                "vmtime, dot, gen FROM files"
            )
            self._files = {row[0]: new(FileRecord, row[1:]) for row in rows}
        return self._files

    @property
    def tombstones(self) -> dict[str, Tombstone]:
        """Every kept tombstone, by path (loaded on first use)."""
        if self._tombstones is None:
            rows = self.db.execute(
                "SELECT path, version, author, origin, mtime_ns, dot, gen FROM tombstones"
            )
            self._tombstones = {row[0]: Tombstone(*row[1:]) for row in rows}
        return self._tombstones

    def set_tombstone(self, path: str, tombstone: Tombstone) -> None:
        """Stage a tombstone for ``path``."""
        self.tombstones[path] = tombstone
        self._dirty_tombstones.add(path)

    def drop_tombstone(self, path: str) -> None:
        """Stage the removal of the tombstone of ``path`` (if any)."""
        if self.tombstones.pop(path, None) is not None:
            self._dirty_tombstones.add(path)

    def reset_history(self) -> None:
        """Forget what was synced (versions, tombstones, acknowledgements), keeping the
        checksum cache: for a section whose relay holds another repository now. Every file is
        then new to this client; versions equal elsewhere merge without a transfer."""
        self.commit()
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "UPDATE files SET synced = NULL, version = NULL, author = NULL, vmtime = NULL, "
                "dot = NULL, gen = NULL"
            )
            self.db.execute("DELETE FROM tombstones")
            self.db.execute("DELETE FROM snapshot")
            for key in ("acks", "want_full", "last_seq", "known", "served", "pending_push"):
                self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        self._files = None
        self._tombstones = None

    def set(self, path: str, record: FileRecord) -> None:
        """Stage ``record`` for ``path``."""
        self.files[path] = record
        self._dirty.add(path)

    def forget(self, path: str) -> None:
        """Stage the removal of ``path``."""
        self.files.pop(path, None)
        self._dirty.add(path)

    def commit(self) -> None:
        """Write staged changes in one transaction (dropping the stat snapshot if a file row
        changed)."""
        if not self._dirty and not self._dirty_tombstones:
            return
        files = self.files if self._dirty else {}
        rows = [(p, *files[p]) for p in self._dirty if p in files]
        gone = [(p,) for p in self._dirty if p not in files]
        marks = self.tombstones if self._dirty_tombstones else {}
        kept = [(p, *marks[p]) for p in self._dirty_tombstones if p in marks]
        dropped = [(p,) for p in self._dirty_tombstones if p not in marks]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, inode, checksum, synced, "
                "origin, version, author, vmtime, dot, gen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.db.executemany("DELETE FROM files WHERE path = ?", gone)
            self.db.executemany(
                "INSERT OR REPLACE INTO tombstones (path, version, author, origin, mtime_ns, dot, "
                "gen) VALUES (?, ?, ?, ?, ?, ?, ?)",
                kept,
            )
            self.db.executemany("DELETE FROM tombstones WHERE path = ?", dropped)
            if self._dirty:
                self.db.execute("DELETE FROM snapshot")
        self._dirty.clear()
        self._dirty_tombstones.clear()

    # -- the stat snapshot -------------------------------------------------------------

    def unchanged(self, scanned: dict[str, FileStat]) -> bool:
        """Whether a scan shows exactly the known files, all settled and untouched.

        True only if the stored snapshot is valid and equal to ``scanned``: then no file was
        added, changed or deleted since the last round, and the rows need not be loaded.
        """
        row = self.db.execute("SELECT format, data FROM snapshot").fetchone()
        if row is None or row[0] != _SNAPSHOT_FORMAT:
            return False
        try:
            snapshot = marshal.loads(row[1])
        except (EOFError, ValueError, TypeError):
            return False
        return bool(snapshot == scanned)

    def save_snapshot(self) -> None:
        """Store the stat snapshot if the rows were loaded and every file is settled (its
        last seen checksum is the synced one); an unsettled file keeps rounds on the full
        comparison."""
        self.commit()  # a stored snapshot is valid: every change of a row deletes it
        stored = self.db.execute("SELECT 1 FROM snapshot WHERE format = ?", (_SNAPSHOT_FORMAT,))
        if self._files is None or stored.fetchone():
            return
        files = self._files
        if any(r.synced is None or r.checksum != r.synced for r in files.values()):
            return
        data = marshal.dumps({p: (r.size, r.mtime_ns, r.inode) for p, r in files.items()})
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM snapshot")
            self.db.execute("INSERT INTO snapshot VALUES (?, ?)", (_SNAPSHOT_FORMAT, data))

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A JSON value of the ``meta`` table."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value in the ``meta`` table (immediately)."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_access(self, path: str) -> tuple[Optional[bool], Optional[bool]]:
        """``(readable, writable)`` of ``path``: ``None`` means unset."""
        row = self.db.execute(
            "SELECT readable, writable FROM access WHERE path = ?", (path,)
        ).fetchone()
        if row is None:
            return None, None
        return (None if row[0] is None else bool(row[0]), None if row[1] is None else bool(row[1]))

    def set_access(self, path: str, readable: Optional[bool], writable: Optional[bool]) -> None:
        """Set (or unset with ``None``) the access attributes of ``path``."""
        if readable is None and writable is None:
            self.db.execute("DELETE FROM access WHERE path = ?", (path,))
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO access VALUES (?, ?, ?)", (path, readable, writable)
            )

    def access_table(self) -> dict[str, tuple[Optional[bool], Optional[bool]]]:
        """Every explicit access attribute."""
        return {
            p: (None if r is None else bool(r), None if w is None else bool(w))
            for p, r, w in self.db.execute("SELECT * FROM access")
        }

    def close(self) -> None:
        """Commit and close."""
        self.commit()
        self.db.close()


#: marshal's format depends on the Python version: a snapshot written by another one is unused.
_SNAPSHOT_FORMAT = f"marshal-{marshal.version}-py{sys.version_info[0]}.{sys.version_info[1]}"


class TimeQuotaController:
    """Adaptive pauses between rounds and the relay quota (the original's controller).

    The pause after ``n`` idle rounds grows from ``refresh/2`` to ``refresh`` along a sigmoid;
    any transfer resets it.

    :param refresh: the longest pause, in seconds.
    :param quota: the largest relay repository size in bytes, or ``None``.
    """

    def __init__(
        self,
        refresh: float = 30.0,
        quota: Optional[int] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.refresh = float(refresh)
        self.quota = quota
        self.idle_rounds = 0
        self._sleep = sleep

    def pause(self) -> float:
        """The pause before the next round."""
        low, high = self.refresh / 2, self.refresh
        return low + (high - low) / (1 + math.exp(10 - 2 * self.idle_rounds))

    def record(self, transferred: bool) -> None:
        """Count an idle round, or reset after a transfer."""
        self.idle_rounds = 0 if transferred else self.idle_rounds + 1

    def wait(self) -> None:
        """Sleep for :meth:`pause` seconds."""
        self._sleep(self.pause())

    def fits(self, used: int, extra: int) -> bool:
        """Whether ``extra`` bytes may be pushed to a relay already holding ``used`` bytes."""
        return self.quota is None or used + extra <= self.quota
