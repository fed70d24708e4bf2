"""Locks that work on dumb storage (DESIGN §2 point 3).

Where the relay has a real create-if-absent (local ``link``, S3 ``If-None-Match``, SFTP
``O_EXCL``) a lock is one object created exclusively. Elsewhere (FTP, WebDAV) it is restic's
scheme: write ``locks/<name>/<token>``, wait for other writers to show up, re-list, and the
oldest claim wins; the others withdraw. A lock expires unless refreshed, so a crashed holder
never blocks the others for more than ``timeout`` seconds.

Lock objects hold only a random token and times: they are written before any key exists (the
repository creation lock), so they must not reveal client names.
"""

from __future__ import annotations

import json
import os
import time
from types import TracebackType
from typing import Optional

from .errors import RelayError, RelayNotFoundError
from .relay import Relay

#: Seconds to wait for concurrent claims to appear before deciding (restic waits similarly).
SETTLE = 1.0


class LockBusyError(RelayError):
    """Another client holds the lock."""


class LockLostError(RelayError):
    """The lock object on the relay no longer holds this client's token: it expired and
    another client took it (or removed it). The operation must stop: nothing more is written."""


class RelayLock:
    """A named lock on a relay.

    :param relay: the relay.
    :param name: what is locked (``init``, ``gc``...).
    :param timeout: seconds after which an unrefreshed lock is stale.
    :param wait: seconds to keep trying while another client holds it.
    """

    def __init__(
        self,
        relay: Relay,
        name: str,
        timeout: float = 1800.0,
        wait: float = 30.0,
        settle: float = SETTLE,
    ) -> None:
        self.relay, self.name, self.timeout, self.wait, self.settle = (
            relay,
            name,
            timeout,
            wait,
            settle,
        )
        self.token = os.urandom(8).hex()
        self.claimed_at = 0.0
        self.object: Optional[str] = None

    def _content(self) -> bytes:
        expires = time.time() + self.timeout  # pushed back by every refresh
        return json.dumps(
            {
                "format": "escale-lock",
                "version": 1,
                "token": self.token,
                "time": self.claimed_at,
                "expires": expires,
            }
        ).encode()

    def _stale(self, name: str) -> bool:
        try:
            lock = json.loads(self.relay.read_bytes(name))
            return float(lock["expires"]) < time.time()
        except RelayNotFoundError:
            return False
        except (ValueError, KeyError, TypeError):
            return True  # unreadable: a writer died half-way on a non-atomic relay

    def acquire(self) -> RelayLock:
        """Take the lock, waiting up to ``wait`` seconds.

        :raises LockBusyError: another client still holds it.
        """
        deadline = time.monotonic() + self.wait
        while True:
            if self._try():
                return self
            if time.monotonic() > deadline:
                raise LockBusyError(
                    f"relay lock '{self.name}' is held by another client; "
                    f"it expires after {self.timeout:.0f} s without refresh"
                )
            time.sleep(min(1.0, self.settle))

    def _try(self) -> bool:
        self.claimed_at = time.time()
        if self.relay.capabilities.exclusive_create:
            name = f"locks/{self.name}"
            if self.relay.create_exclusive(name, self._content()):
                self.object = name
                return True
            if self._stale(name):
                self.relay.delete(name)
            return False
        name = f"locks/{self.name}/{self.token}"
        self.relay.write_bytes(name, self._content())
        time.sleep(self.settle)
        claims = []
        for other in self.relay.list(f"locks/{self.name}"):
            if self._stale(other):
                self.relay.delete(other)
                continue
            try:
                lock = json.loads(self.relay.read_bytes(other))
                claims.append((float(lock["time"]), str(lock["token"]), other))
            except (RelayNotFoundError, ValueError, KeyError, TypeError):
                continue
        if claims and min(claims)[2] == name:
            self.object = name
            return True
        self.relay.delete(name)
        return False

    def take_back(self, token: str) -> bool:
        """Remove a claim of this lock made with ``token`` by a holder that died (this same
        client, which knows its token: nobody else does); return whether one was there.

        The caller must know the holder is dead (e.g. it holds a local lock the holder held)."""
        names = [f"locks/{self.name}", f"locks/{self.name}/{token}"]
        taken = False
        for name in names:
            try:
                lock = json.loads(self.relay.read_bytes(name))
            except (RelayNotFoundError, ValueError, TypeError):
                continue
            if isinstance(lock, dict) and lock.get("token") == token:
                self.relay.delete(name)
                taken = True
        return taken

    def _holds(self, name: str) -> bool:
        """Whether the lock object ``name`` on the relay still carries our token."""
        try:
            lock = json.loads(self.relay.read_bytes(name))
        except (RelayNotFoundError, ValueError, TypeError):
            return False
        return isinstance(lock, dict) and lock.get("token") == self.token

    def refresh(self) -> None:
        """Push the expiry back (call it more often than ``timeout``).

        :raises LockLostError: the lock on the relay is no longer ours (it expired and another
            client took it): it is left alone and the caller must stop writing."""
        if self.object is None:
            return
        if not self._holds(self.object):
            name, self.object = self.object, None
            raise LockLostError(
                f"relay lock '{self.name}' ({name}) was lost: it expired and another client "
                f"took it or removed it; the operation stopped, run it again"
            )
        self.relay.write_bytes(self.object, self._content())

    def release(self) -> bool:
        """Give the lock back; return whether it was still ours. A lock another client took
        after ours expired is left in place (deleting it would free theirs)."""
        if self.object is None:
            return False
        name, self.object = self.object, None
        if not self._holds(name):
            return False
        self.relay.delete(name)
        return True

    def __enter__(self) -> RelayLock:
        return self.acquire()

    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        value: Optional[BaseException],
        trace: Optional[TracebackType],
    ) -> None:
        self.release()
