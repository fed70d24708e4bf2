"""The unwrapped master key, kept beside the local state so that Argon2 runs once per machine.

Unwrapping the repository key derives a key from the passphrase with Argon2id (tens of
milliseconds and 19 MiB by design: that is what makes guessing passphrases slow). Paying it at
every ``escale sync`` makes it most of an idle round's cost. Where the passphrase already sits
in a file only its owner can read, keeping the unwrapped key in another such file, in the
state folder, gives an attacker nothing the passphrase file does not already give: whoever
reads one reads the other. A passphrase given any other way (in the configuration, or a file
others can read) is never cached.

An entry is used only for the very header it was made from (a digest of the whole header:
repository id, KDF parameters, salt, wrapped key) and the very passphrase (an HMAC of it under
the master key): a new passphrase (``escale key passwd``), a replaced header or an edited
passphrase file all mean a fresh unwrap, which checks everything as before. The file is
written 0600 under a temporary name and renamed; one that is not private, not ours, or not
valid is ignored.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any, Optional


def is_private(path: Path) -> bool:
    """Whether ``path`` is a regular file of this user that no one else may read or write."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    owner = getattr(os, "getuid", lambda: info.st_uid)()
    return stat.S_ISREG(info.st_mode) and info.st_uid == owner and not info.st_mode & 0o077


def header_digest(header: dict[str, Any]) -> str:
    """A digest of the whole header, in a canonical JSON form."""
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _passphrase_check(master: bytes, passphrase: bytes) -> str:
    return hmac.new(master, b"escale key cache\0" + passphrase, hashlib.sha256).hexdigest()


class KeyCache:
    """One section's cached master key, in the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def beside(cls, state_database: Path, passphrase_file: Optional[Path]) -> Optional[KeyCache]:
        """The cache of a section whose state database is ``state_database``, or ``None`` when
        its passphrase file is missing or others may read it (a cache left from when it was
        private is removed)."""
        cache = cls(state_database.with_suffix(".key"))
        if passphrase_file is not None and is_private(passphrase_file):
            return cache
        cache.forget()
        return None

    def get(self, header: dict[str, Any], passphrase: bytes) -> Optional[bytes]:
        """The master key kept for this header and passphrase, or ``None``."""
        if not is_private(self.path):
            return None
        try:
            entry = json.loads(self.path.read_bytes())
            master = base64.b64decode(entry["key"], validate=True)
            if entry["header"] != header_digest(header):
                return None
            expected = _passphrase_check(master, passphrase)
            if not hmac.compare_digest(entry["passphrase"], expected):
                return None
        except (OSError, ValueError, TypeError, KeyError):
            return None  # unreadable or corrupt: unwrap again (and rewrite it)
        return master

    def put(self, header: dict[str, Any], passphrase: bytes, master: bytes) -> None:
        """Keep ``master`` for this header and passphrase (silently not, where the state
        folder cannot be written: the cache only saves time)."""
        entry = {
            "header": header_digest(header),
            "passphrase": _passphrase_check(master, passphrase),
            "key": base64.b64encode(master).decode(),
        }
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(entry).encode())
            os.replace(temp, self.path)
        except OSError:
            with_suppressed_unlink(temp)

    def forget(self) -> None:
        """Remove the cached key, if any."""
        with_suppressed_unlink(self.path)


def with_suppressed_unlink(path: Path) -> None:
    """Remove ``path`` if it exists; an error is no error here."""
    with contextlib.suppress(OSError):
        path.unlink()
