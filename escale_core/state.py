"""Local state: one SQLite database per section, with a schema version.

:class:`LocalState` (in :mod:`escale_core.history`) reads and writes it in batches.

The state folder is ``$ESCALE_STATE_DIR``, else the ``state_dir`` global key, else the user
state directory of platformdirs (``~/.local/state/escale`` on Linux). Each section has its own
database file there, named after the section (sanitized) and a short hash of its name, so two
sections never share one, and renaming a section starts afresh rather than reusing the
wrong state.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path
from typing import Callable, Optional

from .errors import StateError

#: Schema version written in ``PRAGMA user_version``; bump it with a migration below.
SCHEMA_VERSION = 3

_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


def _schema_v1(db: sqlite3.Connection) -> None:
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        -- one row per known file: its last seen stat and checksum (the checksum cache), the
        -- checksum of the version last agreed with the relay, and where that version came from
        CREATE TABLE IF NOT EXISTS files (
            path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL, checksum TEXT, synced TEXT, origin TEXT
        );
        CREATE TABLE IF NOT EXISTS access (
            path TEXT PRIMARY KEY, readable INTEGER, writable INTEGER
        );
        """
    )


def _schema_v2(db: sqlite3.Connection) -> None:
    # the stat snapshot of LocalState and the digest of a scan equal to it (a row per format),
    # deleted whenever a file row changes
    db.execute("CREATE TABLE IF NOT EXISTS snapshot (format TEXT NOT NULL, data BLOB NOT NULL)")


#: What a history of relay format 1 knew cannot be carried into format 2 (no version
#: vectors): the upgrade keeps the checksum cache and starts the sync history afresh.
_FORMAT_1_META = ("acks", "want_full", "last_seq", "known", "served", "pending_push")


def _schema_v3(db: sqlite3.Connection) -> None:
    # version vectors: the synced version's vector, author (client id) and recorded mtime;
    # tombstones: deleted files' versions, kept until every known client has seen them
    columns = {row[1] for row in db.execute("PRAGMA table_info(files)")}
    added = (
        ("version", "TEXT"),
        ("author", "TEXT"),
        ("vmtime", "INTEGER"),
        ("dot", "INTEGER"),
        ("gen", "INTEGER"),
    )
    for name, kind in added:
        if name not in columns:
            db.execute(f"ALTER TABLE files ADD COLUMN {name} {kind}")
    db.execute(
        "CREATE TABLE IF NOT EXISTS tombstones (path TEXT PRIMARY KEY, version TEXT NOT NULL, "
        "author TEXT NOT NULL, origin TEXT NOT NULL, mtime_ns INTEGER NOT NULL, "
        "dot INTEGER NOT NULL, gen INTEGER NOT NULL)"
    )
    db.execute("UPDATE files SET synced = NULL WHERE version IS NULL")
    db.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in _FORMAT_1_META])
    db.execute("DELETE FROM snapshot")


_MIGRATIONS[1] = _schema_v1
_MIGRATIONS[2] = _schema_v2
_MIGRATIONS[3] = _schema_v3


def state_dir(configured: Optional[Path] = None) -> Path:
    """The folder holding escale's local state.

    :param configured: the ``state_dir`` global key, if set.
    """
    env = os.environ.get("ESCALE_STATE_DIR")
    if env:
        return Path(env).expanduser()
    if configured is not None:
        return configured
    import platformdirs

    return Path(platformdirs.user_state_dir("escale"))


def state_file(section: str, directory: Path) -> Path:
    """The database file of ``section`` in ``directory``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", section).strip("._")[:48] or "section"
    digest = hashlib.sha256(section.encode()).hexdigest()[:10]
    return directory / f"{safe}-{digest}.sqlite"


def make_state_folder(directory: Path) -> None:
    """Create the state folder if needed.

    :raises StateError: it cannot be created (read-only, permissions, a file in its place).
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise state_folder_error(directory, exc) from None


def state_folder_error(directory: Path, exc: OSError) -> StateError:
    """One line for a state folder escale cannot write."""
    reason = (exc.strerror or type(exc).__name__).lower()
    return StateError(
        f"state folder {directory}: {reason}; make it writable, or set the global key "
        "state_dir to a writable folder"
    )


def open_state(section: str, directory: Path) -> sqlite3.Connection:
    """Open (creating or upgrading) the state database of ``section``.

    :raises StateError: the database was written by a newer escale, or is not a database.
    """
    make_state_folder(directory)
    path = state_file(section, directory)
    try:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StateError(
            f"state database {path} is unusable: {exc}; move it away to start "
            "afresh (the next sync re-scans the folder)"
        ) from None
    if version > SCHEMA_VERSION:
        db.close()
        raise StateError(
            f"state database {path} has schema version {version}, newer than this "
            f"escale's {SCHEMA_VERSION}: upgrade escale"
        )
    for step in range(version + 1, SCHEMA_VERSION + 1):
        # Each migration is idempotent (IF NOT EXISTS...), so a crash before the version is
        # written only repeats it on the next start.
        _MIGRATIONS[step](db)
        db.execute(f"PRAGMA user_version = {step}")
    return db


def schema_version(db: sqlite3.Connection) -> int:
    """The schema version of an open state database."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])
