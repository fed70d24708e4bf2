"""The plugin manager: finds plugins, calls their hooks, credits what each provides.

Order: third-party plugins from the ``escale`` entry-point group first, then the built-ins of
:data:`BUILTIN_PLUGINS`, then ``check_pending()`` so that a misspelt hook fails fast.

Environment:

``ESCALE_DISABLE_PLUGINS``
    comma-separated plugin names (entry-point, distribution or built-in module names) never
    loaded.
``ESCALE_LOAD_PLUGINS``
    when set, only the listed external plugins are loaded (empty: none); built-ins always load
    unless disabled.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

import pluggy

from . import __version__, hookspecs
from .entrypoints import PluginEntry, entry_points_of
from .errors import EscaleError, PluginError
from .registry import Registry

if TYPE_CHECKING:
    import typer

log = logging.getLogger("escale.plugins")

ENTRY_POINT_GROUP = "escale"

#: Built-in plugins, registered after the entry points, through the same hooks.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "escale_relay_fsspec",
    "escale_relay_webdav",
    "escale_relay_sftp",
    "escale_relay_ftp",
    "escale_relay_s3",
    "escale_relay_rclone",
    "escale_cipher_aes",
    "escale_cipher_chacha",
    "escale_cipher_fernet",
    "escale_cipher_plain",
    "escale_checksum_hashlib",
    "escale_checksum_blake3",
    "escale_checksum_xxhash",
)

_REGISTER_HOOKS = {
    "register_relays": "relays",
    "register_ciphers": "ciphers",
    "register_checksums": "checksums",
}


@dataclass
class PluginInfo:
    """What ``escale plugins list`` shows of one plugin."""

    name: str
    version: str
    builtin: bool
    module: str
    distribution: Optional[str] = None
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    #: relay name → why it was never tested against its real storage
    untested: dict[str, str] = field(default_factory=dict)
    #: relay name → the real servers or storage its tests run it against
    verified: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "name": self.name,
            "version": self.version,
            "builtin": self.builtin,
            "module": self.module,
            "distribution": self.distribution,
            "hooks": self.hooks,
            "provides": self.provides,
            "untested": self.untested,
            "verified": self.verified,
        }


def _env_names(variable: str) -> Optional[set[str]]:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {_normalize(n) for n in value.split(",") if n.strip()}


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(".", "_")


class Plugins:
    """The loaded plugins and the registries they filled."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.relays = Registry("relay")
        self.ciphers = Registry("cipher")
        self.checksums = Registry("checksum")
        self.infos: dict[str, PluginInfo] = {}

    # -- loading ---------------------------------------------------------------------------

    def load(self, builtins: Iterable[str] = BUILTIN_PLUGINS) -> None:
        """Load external plugins, then the built-ins, then fill the registries."""
        disabled = _env_names("ESCALE_DISABLE_PLUGINS") or set()
        only = _env_names("ESCALE_LOAD_PLUGINS")
        for ep in entry_points_of(ENTRY_POINT_GROUP):
            self._load_entry_point(ep, disabled, only)
        for module_name in builtins:
            if _normalize(module_name) not in disabled:
                self._load_builtin(module_name)
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.manager.get_name(exc.plugin) or repr(exc.plugin)
            raise PluginError(
                f"plugin '{name}' is invalid: {exc}; disable it with ESCALE_DISABLE_PLUGINS={name}"
            ) from exc
        for hook_name, kind in _REGISTER_HOOKS.items():
            self._collect(hook_name, getattr(self, kind))

    def _load_entry_point(
        self, ep: PluginEntry, disabled: set[str], only: Optional[set[str]]
    ) -> None:
        dist_name = ep.dist
        names = {_normalize(ep.name)} | ({_normalize(dist_name)} if dist_name else set())
        if names & disabled or (only is not None and not names & only):
            return
        if self.manager.has_plugin(ep.name):
            log.warning(
                "plugin '%s' is declared twice (%s); the first one is used", ep.name, ep.value
            )
            return
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not stop escale
            log.warning(
                "plugin '%s' (%s) failed to import and is skipped: %s: %s",
                ep.name,
                dist_name or ep.value,
                type(exc).__name__,
                exc,
            )
            return
        self._register(plugin, ep.name, ep.version, builtin=False, module=ep.value, dist=dist_name)

    def _load_builtin(self, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            log.warning(
                "built-in plugin '%s' failed to import and is skipped: %s", module_name, exc
            )
            return
        self._register(module, module_name, __version__, builtin=True, module=module_name)

    def _register(
        self,
        plugin: object,
        name: str,
        version: str,
        *,
        builtin: bool,
        module: str,
        dist: Optional[str] = None,
    ) -> None:
        try:
            self.manager.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin '{name}' cannot be registered: {exc}") from exc
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"plugin '{name}' is invalid: {exc}; disable it with ESCALE_DISABLE_PLUGINS={name}"
            ) from exc
        hooks = sorted(impl_name for impl_name in _hook_names(self.manager, plugin))
        self.infos[name] = PluginInfo(name, version, builtin, module, dist, hooks)

    def _collect(self, hook_name: str, registry: Registry) -> None:
        caller = getattr(self.manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            plugin_name = impl.plugin_name

            def register(name: str, target: Any, _plugin: str = plugin_name, **kw: Any) -> None:
                registry.add(_plugin, name, target, **kw)

            _call_plugin(plugin_name, hook_name, impl.function, register=register)
        for name, info in self.infos.items():
            provided = [
                n for n in registry.by_plugin(name) if not registry.get(n).options.get("for_tests")
            ]
            if provided:
                info.provides[_REGISTER_HOOKS[hook_name]] = provided
            for n in provided:
                reason = registry.get(n).options.get("untested")
                if reason:
                    info.untested[n] = str(reason)
                if registry.get(n).options.get("verified"):
                    info.verified[n] = list(registry.get(n).options["verified"])

    def register_commands(self, app: typer.Typer) -> None:
        """Let every plugin add its commands to ``app``; a name taken twice is an error."""
        for impl in self.manager.hook.register_commands.get_hookimpls():
            before = Counter(_command_names(app))
            _call_plugin(impl.plugin_name, "register_commands", impl.function, app=app)
            added = Counter(_command_names(app)) - before
            clash = sorted(n for n, count in added.items() if n in before or count > 1)
            if clash:
                raise PluginError(
                    f"plugin '{impl.plugin_name}' adds command '{clash[0]}', which already exists"
                )
            if added:
                provided = self.infos[impl.plugin_name].provides.setdefault("commands", [])
                provided.extend(sorted(added))

    def describe(self, include_builtins: bool = True) -> list[PluginInfo]:
        """The plugins, external ones first, each with what it provides."""
        infos = sorted(self.infos.values(), key=lambda i: (i.builtin, i.name))
        return [i for i in infos if include_builtins or not i.builtin]


def _command_names(app: typer.Typer) -> list[str]:
    names = []
    for command in app.registered_commands:
        name = command.name
        if name is None and command.callback is not None:
            name = command.callback.__name__.replace("_", "-")
        names.append(str(name))
    for group in app.registered_groups:
        instance = group.typer_instance
        names.append(str(group.name or (instance.info.name if instance else None)))
    return names


def _hook_names(manager: pluggy.PluginManager, plugin: object) -> list[str]:
    callers = manager.get_hookcallers(plugin) or []
    return [caller.name for caller in callers]


def _call_plugin(plugin_name: str, hook_name: str, function: Callable[..., Any], **kw: Any) -> None:
    try:
        function(**kw)
    except EscaleError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin '{plugin_name}' failed in {hook_name}: {type(exc).__name__}: {exc}"
        ) from exc


_loaded: Optional[Plugins] = None


def get_plugins() -> Plugins:
    """Return the process-wide plugins, loading them on first use."""
    global _loaded
    if _loaded is None:
        plugins = Plugins()
        plugins.load()
        _loaded = plugins
    return _loaded


def reset_plugins() -> None:
    """Forget the loaded plugins, so that the next :func:`get_plugins` loads them anew."""
    global _loaded
    _loaded = None
