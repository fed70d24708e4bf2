"""Registries of what plugins provide: relay schemes, ciphers and checksums.

Each entry is credited to the plugin that registered it. Targets may be lazy
(``"package.module:Attribute"``, as in fsspec's registry) so that an optional backend is
imported only when a section uses it, and its absence is reported with an install hint.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .errors import MissingDependencyError, PluginConflictError, PluginError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")
#: The kind-specific options each ``register`` callback accepts.
_OPTIONS = {
    "relay": {"multipath", "needs_host", "for_tests", "untested", "verified"},
    "checksum": {"speed"},
    "cipher": set(),
}


@dataclass
class Entry:
    """One name registered by one plugin.

    :param kind: ``"relay"``, ``"cipher"`` or ``"checksum"``.
    :param name: the registered name (a URL scheme, a cipher or checksum name).
    :param target: the object, or a lazy ``"pkg.mod:attr"`` string.
    :param plugin: the name of the plugin that registered it.
    :param description: one line for humans.
    :param requires: module names needed at run time.
    :param install_hint: how to install what ``requires`` names.
    :param options: kind-specific flags (``multipath`` for relays, ``speed`` for checksums).
    """

    kind: str
    name: str
    target: Union[str, Any]
    plugin: str
    description: str = ""
    requires: tuple[str, ...] = ()
    install_hint: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    _loaded: bool = field(default=False, repr=False, compare=False)

    def missing(self) -> list[str]:
        """Return the required modules that cannot be found (without importing them)."""
        absent = []
        for module in self.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                absent.append(module)
        return absent

    @property
    def available(self) -> bool:
        """Whether every required module is installed."""
        return not self.missing()

    def load(self) -> Any:
        """Return the target, importing it if it is lazy.

        :raises MissingDependencyError: a required package is not installed.
        :raises PluginError: the lazy target cannot be imported.
        """
        if self._loaded:  # requirements checked once: sync calls this per file
            return self.target
        absent = self.missing()
        if absent:
            raise MissingDependencyError(self._missing_message(", ".join(absent)))
        if not isinstance(self.target, str):
            self._loaded = True
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(self._missing_message(exc.name or module_name)) from exc
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.kind} '{self.name}' of plugin '{self.plugin}' cannot be loaded from "
                f"'{self.target}': {exc}"
            ) from exc
        self.target, self._loaded = obj, True
        return obj

    def _missing_message(self, what: str) -> str:
        hint = self.install_hint or f"pip install {what}"
        return f"{self.kind} '{self.name}' needs {what}, which is not installed: {hint}"


class Registry:
    """The entries of one kind, keyed by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(
        self,
        plugin: str,
        name: str,
        target: Union[str, Any],
        *,
        description: str = "",
        requires: Sequence[str] = (),
        install_hint: str = "",
        **options: Any,
    ) -> Entry:
        """Validate and add an entry credited to ``plugin``.

        :raises PluginError: the name or target is invalid.
        :raises PluginConflictError: another plugin (or the same one) already registered it.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(
                f"plugin '{plugin}' registered an invalid {self.kind} name {name!r}: use lower "
                "case letters, digits and - _ . +"
            )
        if isinstance(target, str) and ":" not in target:
            raise PluginError(
                f"plugin '{plugin}' registered {self.kind} '{name}' with target {target!r}: "
                "a lazy target is written 'package.module:Attribute'"
            )
        if isinstance(requires, str):
            requires = (requires,)
        unknown = sorted(set(options) - _OPTIONS.get(self.kind, set()))
        if unknown:
            raise PluginError(
                f"plugin '{plugin}' registered {self.kind} '{name}' with unknown option "
                f"'{unknown[0]}'"
            )
        _check_notes(plugin, f"{self.kind} '{name}'", options)
        previous = self._entries.get(name)
        if previous is not None:
            raise PluginConflictError(
                f"{self.kind} '{name}' is registered by both plugin '{previous.plugin}' and "
                f"plugin '{plugin}': disable one with ESCALE_DISABLE_PLUGINS"
            )
        entry = Entry(
            self.kind, name, target, plugin, description, tuple(requires), install_hint, options
        )
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> Entry:
        """Return the entry for ``name``.

        :raises KeyError: nothing registered that name.
        """
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def by_plugin(self, plugin: str) -> list[str]:
        """The names credited to ``plugin``, sorted."""
        return sorted(e.name for e in self._entries.values() if e.plugin == plugin)


def _check_notes(plugin: str, what: str, options: dict[str, Any]) -> None:
    """``untested`` must be a string and ``verified`` strings (one string is a list of one)."""
    if not isinstance(options.get("untested", ""), str):
        raise PluginError(f"plugin '{plugin}' registered {what} with a non-string 'untested'")
    verified = options.get("verified", ())
    if isinstance(verified, str):
        verified = (verified,)
    if not isinstance(verified, (list, tuple)) or not all(isinstance(v, str) for v in verified):
        raise PluginError(
            f"plugin '{plugin}' registered {what} with 'verified' not a list of strings"
        )
    if "verified" in options:
        options["verified"] = tuple(verified)
