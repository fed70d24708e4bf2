"""A network relay's changes, told cheaply: one listing and the client states.

Between rounds a worker whose local folder announces its own changes (file-system events)
only needs to know whether the relay changed. A :class:`RelayWatch` answers with a
fingerprint of the relay: every object's name and size, and a hash of each client state's
bytes (a client state can change and keep its size; one rewritten shows new bytes, since
each write is sealed with a fresh nonce). An idle round writes nothing to the relay, so the
fingerprint of a quiet repository stays the same; any update, deletion or client state
written by anyone changes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Optional

from ..config import SectionConfig
from ..errors import EscaleError
from ..plugins import Plugins
from ..relay import Relay
from ..repository import MAX_SEALED_CLIENT, bounded
from ..session import open_section_relay

log = logging.getLogger("escale")


def relay_fingerprint(relay: Relay) -> str:
    """What the relay holds now, in a few bytes (one listing and one read per client)."""
    sizes = relay.list_sizes("")
    digest = hashlib.sha256()
    for name in sorted(sizes):
        digest.update(f"{name}\0{sizes[name]}\n".encode())
        # a client state the relay made huge is left to the round, which refuses it
        if name.startswith("clients/") and sizes[name] <= MAX_SEALED_CLIENT:
            for chunk in bounded(relay.read_stream(name), MAX_SEALED_CLIENT, name):
                digest.update(chunk)
    return digest.hexdigest()


class RelayWatch:
    """Fingerprints of one section's relay, through a connection kept between checks.

    :param section: the section whose relay is watched.
    """

    def __init__(self, section: SectionConfig, plugins: Plugins) -> None:
        self.section, self.plugins = section, plugins
        self._relay: Optional[Relay] = None

    def fingerprint(self) -> Optional[str]:
        """The relay's fingerprint now, or ``None`` when it cannot be read (the next round
        then runs, and reports the error in full)."""
        try:
            if self._relay is None:
                self._relay = open_section_relay(self.section, self.plugins)
            return relay_fingerprint(self._relay)
        except (EscaleError, OSError) as exc:
            log.debug("[%s] relay not checked: %s", self.section.name, exc)
            self.close()  # a dropped connection: open a new one next time
            return None

    def close(self) -> None:
        """Drop the connection."""
        relay, self._relay = self._relay, None
        if relay is not None:
            with contextlib.suppress(EscaleError, OSError):
                relay.close()
