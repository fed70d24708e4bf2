"""What every operation on a repository holds while it runs (DESIGN §4, §10).

- The running daemon does not sync the section, or has it paused (``escale pause``): an
  operation and a round never work on one repository from one client at once.
- The section's local lock (:func:`escale_core.session.section_lock`): no ``escale sync`` of
  this section runs meanwhile on this machine.
- The relay's maintenance lock (``locks/maintenance``, DESIGN §2.3): no other client runs an
  operation on the same repository. It carries a random token and times only, expires unless
  refreshed (:meth:`Maintenance.keep_alive`), so a killed operation blocks nobody for long.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..config import Config, SectionConfig
from ..control import ask_daemon
from ..errors import EscaleError, FileWriteError, UsageError
from ..history import LocalState
from ..locks import LockBusyError, RelayLock
from ..plugins import Plugins
from ..relay import Relay
from ..repository import Repository
from ..session import (
    open_section_relay,
    open_section_repository,
    section_lock,
    section_state_dir,
)
from ..state import state_file

#: The name of the relay lock every operation takes.
MAINTENANCE_LOCK = "maintenance"
#: Seconds after which an unrefreshed maintenance lock is stale (a killed operation).
LOCK_TIMEOUT = 600.0
#: Refresh the lock when this much of its timeout has gone by.
REFRESH_EVERY = LOCK_TIMEOUT / 4


def refuse_if_daemon_syncs(config: Config, section: str, command: str) -> None:
    """Refuse to run ``command`` on ``section`` while a running daemon syncs it unpaused.

    :raises UsageError: the daemon syncs the section; the message says how to pause it.
    """

    answer = ask_daemon(config, "status", section)
    if not answer or "error" in answer:
        return  # no daemon, or one that does not sync this section
    states = [s.get("state") for s in answer.get("sections", [])]
    if states and any(state != "paused" for state in states):
        raise UsageError(
            f"[{section}] is being synced by the running daemon (pid {answer.get('pid')}): "
            f"run 'escale pause {section}', then 'escale {command}', then "
            f"'escale resume {section}'"
        )


@dataclass
class Maintenance:
    """A section under maintenance: its relay, held locks, and the repository on demand."""

    config: Config
    section: SectionConfig
    plugins: Plugins
    relay: Relay
    lock: RelayLock
    #: the state folder of the configuration (local state, section locks)
    state_folder: Path
    _refreshed: float = field(default_factory=time.monotonic)

    def keep_alive(self) -> None:
        """Refresh the maintenance lock if due; call it between objects of a long operation."""
        if time.monotonic() - self._refreshed > REFRESH_EVERY:
            self.lock.refresh()
            self._refreshed = time.monotonic()

    def local_state(self) -> LocalState:
        """The section's local state (the caller closes it)."""
        return LocalState(self.section.name, self.state_folder)

    def kept_header(self) -> Optional[dict[str, Any]]:
        """The header this client joined the repository with (``None``: it never synced)."""
        state = self.local_state()
        try:
            header: Optional[dict[str, Any]] = state.get_meta("header")
            return header
        finally:
            state.close()

    def open_repository(
        self, kept: Optional[dict[str, Any]] = None, kept_key_check: Optional[str] = None
    ) -> Repository:
        """Open the section's existing repository (never creates one); checks the passphrase
        and, when given, that the header is ``kept`` (or ``kept`` re-wrapped around the key
        whose fingerprint is ``kept_key_check``)."""
        return open_section_repository(
            self.section,
            self.relay,
            self.plugins,
            kept=kept,
            create=False,
            kept_key_check=kept_key_check,
        )

    def kept_identity(self) -> tuple[Optional[dict[str, Any]], Optional[str]]:
        """The header this client syncs with and the fingerprint of its key (``None``: it
        never synced)."""
        state = self.local_state()
        try:
            return state.get_meta("header"), state.get_meta("key check")
        finally:
            state.close()

    def open_kept_repository(self) -> Repository:
        """Open the repository as a sync does: the header must be the one this client joined
        with, or that one re-wrapped around the same key (``escale key passwd``); a replaced
        header is refused."""
        kept, kept_key_check = self.kept_identity()
        return self.open_repository(kept, kept_key_check)

    def where(self) -> str:
        """``[section] relay URL``, to start a message with."""
        return f"[{self.section.name}] relay {self.section.address.display()}"


@contextmanager
def maintenance(
    config: Config,
    section: SectionConfig,
    plugins: Plugins,
    command: str,
    *,
    directory: Optional[Path] = None,
    wait: float = 30.0,
    relay: Optional[Relay] = None,
) -> Iterator[Maintenance]:
    """Hold everything an operation on ``section`` needs (see the module's docstring).

    :param command: the command as the user types it (``"check photos"``), for messages.
    :param directory: the state folder (default: the configuration's).
    :param wait: seconds to wait for another client's maintenance lock.
    :param relay: an already opened relay of the section (closed here); default: open one.
    :raises UsageError: a running daemon syncs the section.
    :raises LockBusyError: another client holds the maintenance lock.
    """
    refuse_if_daemon_syncs(config, section.name, command)
    folder = directory or section_state_dir(config)
    with section_lock(section.name, folder):
        relay = relay or open_section_relay(section, plugins)
        try:
            lock = _acquire(relay, section, folder, command, wait)
            try:
                yield Maintenance(config, section, plugins, relay, lock, folder)
            finally:
                # it expires by itself; the operation's own outcome matters more
                with contextlib.suppress(EscaleError):
                    lock.release()
                _held_token(section.name, folder).unlink(missing_ok=True)
        finally:
            relay.close()


def _held_token(section: str, folder: Path) -> Path:
    """The file that holds the token of the maintenance lock this client holds (or held when
    it was killed): only this client knows it, so only it may take that lock back at once."""
    return state_file(section, folder).with_suffix(".maintenance")


def _acquire(
    relay: Relay, section: SectionConfig, folder: Path, command: str, wait: float
) -> RelayLock:
    """Take the maintenance lock; a lock left by this client's own killed operation (its
    token is in the state folder, and the section lock says that operation is gone) is taken
    back at once instead of waiting for it to expire."""
    held = _held_token(section.name, folder)
    if held.exists():
        RelayLock(relay, MAINTENANCE_LOCK).take_back(held.read_text(encoding="utf-8").strip())
    lock = RelayLock(relay, MAINTENANCE_LOCK, timeout=LOCK_TIMEOUT, wait=wait)
    try:
        lock.acquire()
    except LockBusyError as exc:
        raise LockBusyError(
            f"[{section.name}] relay {section.address.display()}: another client runs "
            f"an operation on this repository ({exc}); run 'escale {command}' again later"
        ) from None
    try:
        held.write_text(lock.token, encoding="utf-8")
    except OSError as exc:
        lock.release()
        raise FileWriteError(held, exc) from None
    return lock
