"""What a client remembers between rounds, in its section's SQLite database.

Per file: the last seen stat with its checksum (so an unchanged tree is never re-read), the
checksum of the version last agreed with the relay (``synced``: the base of the next change,
and the version a tombstone may delete), and where that version came from (``origin``).
Rows are loaded on first use and written back in one transaction; an idle round loads none
(see :meth:`LocalState.unchanged`).
"""

from __future__ import annotations

import json
import logging
import marshal
import math
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Union

from .errors import UsageError
from .local import FileStat
from .scanner import ScanResult
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

    def unchanged(self, scanned: Union[dict[str, FileStat], ScanResult]) -> bool:
        """Whether a scan shows exactly the known files, all settled and untouched.

        True only if the stored snapshot is valid and equal to ``scanned``: then no file was
        added, changed or deleted since the last round, and the rows need not be loaded.
        A scan whose digest (:attr:`ScanResult.digest`) equals the one stored with the
        snapshot is that scan: it is neither compared nor decoded. A scan found equal stores
        its digest for the next rounds.
        """
        digest = scanned.digest if isinstance(scanned, ScanResult) else None
        if digest is not None and self._snapshot_data(_DIGEST_FORMAT) == digest:
            return True
        data = self._snapshot_data(_SNAPSHOT_FORMAT)
        if data is None:
            return False
        try:
            snapshot = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return False
        if snapshot != (scanned.files if isinstance(scanned, ScanResult) else scanned):
            return False
        if digest is not None:
            self._store_snapshot(_DIGEST_FORMAT, digest)
        return True

    def _snapshot_data(self, kind: str) -> Optional[bytes]:
        row = self.db.execute("SELECT data FROM snapshot WHERE format = ?", (kind,)).fetchone()
        return None if row is None else bytes(row[0])

    def _store_snapshot(self, kind: str, data: bytes) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM snapshot WHERE format = ?", (kind,))
            self.db.execute("INSERT INTO snapshot VALUES (?, ?)", (kind, data))

    def save_snapshot(self, scanned: Optional[ScanResult] = None) -> None:
        """Store the stat snapshot if the rows were loaded and every file is settled (its
        last seen checksum is the synced one); an unsettled file keeps rounds on the full
        comparison. With this round's scan, equal to the snapshot (nothing changed since
        it), its digest is stored too (see :meth:`unchanged`)."""
        self.commit()  # a stored snapshot is valid: every change of a row deletes it
        if self._files is None or self._snapshot_data(_SNAPSHOT_FORMAT) is not None:
            return
        files = self._files
        if any(r.synced is None or r.checksum != r.synced for r in files.values()):
            return
        stats = {p: (r.size, r.mtime_ns, r.inode) for p, r in files.items()}
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM snapshot")
            self.db.execute(
                "INSERT INTO snapshot VALUES (?, ?)", (_SNAPSHOT_FORMAT, marshal.dumps(stats))
            )
        digest = scanned.digest if scanned is not None else None
        if scanned is not None and digest is not None and stats == scanned.files:
            self._store_snapshot(_DIGEST_FORMAT, digest)

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
#: the row of the snapshot table that holds the digest of a scan equal to the snapshot
_DIGEST_FORMAT = "scan-digest-1"


#: the original's ``refresh = true``: the longest pause between rounds, in seconds
DEFAULT_REFRESH = 30.0
#: the original re-read the relay's used space at most every 5 minutes
QUOTA_READ_INTERVAL = 300.0
MB = 1_000_000


class TimeQuotaController:
    """Adaptive pauses between rounds and the relay quota (the original's controller).

    The pause after ``n`` idle rounds grows along a sigmoid from ``shortest`` to ``refresh``
    (``t0 + (tN - t0) / (1 + exp(10 - 2n))``: about ``shortest`` for three rounds, ``refresh``
    after eight); any transfer resets it.

    :param refresh: the longest pause, in seconds; ``True`` (the original's default) is 30 s.
    :param quota: the largest relay repository size, in MB (the original's unit), or ``None``.
    :param quota_read_interval: how often, in seconds, :meth:`push` reads the relay's used
        space again through ``quota_read_callback`` (default 300; it counts its own pushes
        in between).
    :param quota_read_callback: returns the relay's used space in bytes.
    :param logger: where a push refused for the quota is logged.
    :param shortest: the pause right after a transfer (default ``refresh / 2``, as the
        original; the daemon lists a network relay again after 1 s).
    """

    def __init__(
        self,
        refresh: Union[bool, float] = True,
        quota: Optional[float] = None,
        quota_read_interval: Optional[float] = None,
        quota_read_callback: Optional[Callable[[], int]] = None,
        logger: Optional[logging.Logger] = None,
        *,
        shortest: Optional[float] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # the original parsed ``refresh`` as a boolean first: True meant 30 s, never 1 s
        self.refresh = DEFAULT_REFRESH if isinstance(refresh, bool) else float(refresh)
        if self.refresh <= 0:
            raise UsageError(f"TimeQuotaController: refresh must be positive, not {refresh}")
        self.shortest = min(self.refresh, self.refresh / 2 if shortest is None else shortest)
        self.quota = quota
        self.quota_read_interval = (
            QUOTA_READ_INTERVAL if quota_read_interval is None else quota_read_interval
        )
        self.quota_read_callback = quota_read_callback
        self.logger = logger or logging.getLogger("escale")
        self.idle_rounds = 0
        self._sleep = sleep
        self._active = False  # a push or pull since the last wait
        self._used: Optional[int] = None
        self._used_read_at = -math.inf

    @property
    def quota_bytes(self) -> Optional[int]:
        """The quota in bytes (``None``: no quota)."""
        return None if self.quota is None else int(self.quota * MB)

    def pause(self) -> float:
        """The pause before the next round."""
        low, high = self.shortest, self.refresh
        return low + (high - low) / (1 + math.exp(10 - 2 * self.idle_rounds))

    def record(self, transferred: bool) -> None:
        """Count an idle round, or reset after a transfer."""
        self.idle_rounds = 0 if transferred or self._active else self.idle_rounds + 1
        self._active = False

    def wait(self) -> None:
        """Sleep for :meth:`pause` seconds (a push or pull since the last wait resets it)."""
        if self._active:
            self.idle_rounds, self._active = 0, False
        self._sleep(self.pause())

    def push(
        self, local_file: Union[str, Path], callback: Optional[Callable[[], Any]] = None
    ) -> bool:
        """Count a push of ``local_file`` against the quota, then run ``callback`` (the upload).

        :returns: False, and nothing run, when the file would take the relay over the quota.
        """
        size = Path(local_file).stat().st_size
        used = self.used_space()
        if used is not None and not self.fits(used, size):
            self.logger.warning(
                "%s: not pushed, the relay quota (%s MB) is exceeded", local_file, self.quota
            )
            return False
        if callback is not None:
            callback()
        if self._used is not None:
            self._used += size
        self._active = True
        return True

    def pull(self, local_file: Union[str, Path]) -> None:
        """Note a pull of ``local_file``: the pauses start short again."""
        self._active = True

    def used_space(self) -> Optional[int]:
        """The relay's used space in bytes, read again every ``quota_read_interval`` seconds
        (``None``: no quota or no way to read it)."""
        if self.quota is None or self.quota_read_callback is None:
            return None
        now = time.monotonic()
        if self._used is None or now - self._used_read_at >= self.quota_read_interval:
            self._used, self._used_read_at = int(self.quota_read_callback()), now
        return self._used

    def fits(self, used: int, extra: int) -> bool:
        """Whether ``extra`` bytes may be pushed to a relay already holding ``used`` bytes."""
        quota = self.quota_bytes
        return quota is None or used + extra <= quota
