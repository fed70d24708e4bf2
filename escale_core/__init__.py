"""escale: keep folders in sync through an untrusted passive relay storage.

The core is small: configuration, the plugin manager, the sync engine. Relays, ciphers and
checksums come from plugins (built-in ones under ``plugins/``), which implement the hooks of
:mod:`escale_core.hookspecs` with :data:`hookimpl`.
"""

from __future__ import annotations

import pluggy

__version__ = "0.2.0"

#: Marker for plugin hook implementations: ``@hookimpl def register_relays(register): ...``
hookimpl = pluggy.HookimplMarker("escale")

__all__ = ["__version__", "hookimpl"]
