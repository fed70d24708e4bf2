"""escale: keep folders in sync through an untrusted passive relay storage.

The core is small: configuration, the plugin manager, the sync engine. Relays, ciphers and
checksums come from plugins (built-in ones under ``plugins/``), which implement the hooks of
:mod:`escale_core.hookspecs` with :data:`hookimpl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    import pluggy

    #: Marker for plugin hook implementations: ``@hookimpl def register_relays(register): ...``
    hookimpl = pluggy.HookimplMarker("escale")

__all__ = ["__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    """``hookimpl``, made on first use: pluggy is imported only by what loads plugins, so that
    ``escale --version`` and the core commands' help start without it."""
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker("escale")
        globals()["hookimpl"] = marker  # later uses find it without calling here
        return marker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
