"""Triggers: a worker's round starts when something changed, not on a timer alone.

A :class:`ChangeWatcher` follows file-system events (watchfiles: inotify, FSEvents...) under a
section's local folder, and under its relay folder when the relay is a local folder or a
mount, and wakes the worker once the changes settle. What escale itself writes and nobody
needs to hear of is left out: its local folder ``.escale/`` (previous versions, the marker)
and its temporary files. The relay's client states are followed: a round rewrites one only
when it says something new (acknowledgements, a request for a full update), so an idle
round wakes nobody. A change a round makes itself wakes it once more, for one idle round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional

from ..config import SectionConfig
from ..local import TEMP_PREFIX

log = logging.getLogger("escale")

#: changes are grouped until none came for STEP_MS, or for DEBOUNCE_MS at most
DEBOUNCE_MS = 1000
STEP_MS = 100


def local_relay_folder(section: SectionConfig) -> Optional[Path]:
    """The relay's folder when it is a local folder or a mount (its events can be followed),
    else ``None`` (a network relay is listed on the timer)."""
    address = section.address
    if address.mount is not None:
        return Path(address.mount) / (address.path or "")
    if address.scheme in ("file", "local") and address.path:
        return Path(address.path)
    return None


def watch_available() -> bool:
    """Whether file-system events can be followed here (the ``watchfiles`` package)."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


class ChangeWatcher(threading.Thread):
    """Calls ``on_change`` when files change under ``folders`` (``relay`` among them is a
    relay folder: everything in it is news).

    :param folders: the folders to follow (missing ones are skipped).
    :param on_change: called from this thread once a batch of changes settled.
    """

    def __init__(
        self,
        name: str,
        folders: Sequence[Path],
        on_change: Callable[[], None],
        relay: Optional[Path] = None,
    ) -> None:
        super().__init__(name=f"escale-watch-{name}", daemon=True)
        self.folders = [f for f in folders if f.is_dir()]
        self.on_change, self.relay = on_change, relay
        self._halt = threading.Event()

    def stop(self) -> None:
        """Stop following (within :data:`STEP_MS`)."""
        self._halt.set()

    def wanted(self, path: str) -> bool:
        """Whether a change of ``path`` is news for the worker."""
        parts = Path(path).parts
        if any(part.startswith(TEMP_PREFIX) or part.startswith(".tmp-") for part in parts):
            return False
        if self.relay is not None and Path(path).is_relative_to(self.relay):
            return True
        return ".escale" not in parts

    def run(self) -> None:
        """Follow events until stopped; an error ends the watch (the worker's timer remains)."""
        if not self.folders:
            return
        import watchfiles

        log.info(
            "[%s] following file-system events of %s",
            self.name.removeprefix("escale-watch-"),
            ", ".join(map(str, self.folders)),
        )
        try:
            for changes in watchfiles.watch(
                *self.folders,
                watch_filter=lambda _change, path: self.wanted(path),
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=self._halt,
                raise_interrupt=False,
            ):
                if changes:
                    self.on_change()
        except Exception as exc:  # a vanished folder, an exhausted inotify limit...
            log.warning(
                "%s: file-system events stopped (%s); rounds run on the timer", self.name, exc
            )
