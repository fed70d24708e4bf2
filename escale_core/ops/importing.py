"""``escale config import``: an original Escale INI configuration as escale's TOML.

The original's option names and aliases are those the loader already knows
(:mod:`escale_core.config.schema`: ``SECTION_KEYS``, ``LEGACY_RELAY_PARTS``,
``LEGACY_MODE_FLAGS``, ``OBSOLETE``); this module turns their INI string values into typed TOML
values, combines protocol, address, port, directory and user into one ``relay`` URL, and names
every option that has no equivalent in a warning of its own (``[section] 'option': ...``).

Lines before the first ``[section]`` are global, as in the original (which inserted a
``[DEFAULT]`` header): the global-only keys become escale's global keys, the other keys
defaults of every section.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import tomlkit

from ..access import ORIGINAL_MODES
from ..config import schema
from ..config import values as v
from ..config.legacy import legacy_relay_url
from ..config.loader import parse_config
from ..config.sections import MAX_PAGE
from ..errors import ConfigError
from ..patterns import Pattern

if TYPE_CHECKING:
    from ..plugins import Plugins

#: Keys the original's wizard wrote for information only.
WIZARD_ONLY = ("client_count", "homogeneous_clients", "upload_count")
#: Original spellings the escale schema reads otherwise: ``key file`` was the TLS private key.
_ORIGINAL_FIRST = {"key_file": "keyfile"}
#: Keys decided from a section's own and inherited values together, never written globally.
_PER_SECTION = {
    "relay",
    "username",
    "mode",
    "encryption",
    "passphrase",
    "path",
    *schema.LEGACY_RELAY_PARTS,
}
_LOG_LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "warn": "warning"}
_LOG_LEVELS.update(error="error", critical="error", fatal="error")

Entry = tuple[str, str]  # (key as written, value as written)


@dataclass
class Imported:
    """The converted configuration: the TOML document and one warning line per option that
    has no equivalent (or changes meaning)."""

    document: tomlkit.TOMLDocument
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The TOML text."""
        return tomlkit.dumps(self.document)


def read_ini(path: Path) -> configparser.RawConfigParser:
    """Read an original Escale INI file.

    :raises ConfigError: unreadable, not UTF-8, or not valid INI (naming the line).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror or exc}", file=path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError("not UTF-8 text", file=path, line=line) from None
    parser = configparser.RawConfigParser(strict=True)
    try:  # the original, too, made the lines before the first section its [DEFAULT]
        parser.read_string("[DEFAULT]\n" + text, source=str(path))
    except configparser.Error as exc:
        raise _ini_error(exc, path) from None
    return parser


def _ini_error(exc: configparser.Error, path: Path) -> ConfigError:
    line = getattr(exc, "lineno", None)
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        line = exc.errors[0][0]
        problem = f"not valid INI: cannot parse {exc.errors[0][1]}"
    elif isinstance(exc, configparser.DuplicateOptionError):
        problem = f"not valid INI: [{exc.section}] '{exc.option}' is set twice"
    elif isinstance(exc, configparser.DuplicateSectionError):
        problem = f"not valid INI: section [{exc.section}] appears twice"
    else:
        problem = "not valid INI: " + str(exc).splitlines()[0]
    return ConfigError(problem, file=path, line=line - 1 if line else None)


def import_file(path: Path, plugins: Plugins, now: Optional[datetime] = None) -> Imported:
    """Convert the original configuration file ``path``.

    :raises ConfigError: the file cannot be read, is not INI, or holds a value the original
        refused too (an unknown mode, encryption without a passphrase...).
    """
    parser = read_ini(path)
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    return convert(parser, plugins, path, f"Imported from {path.resolve()} on {stamp}")


def convert(
    parser: configparser.RawConfigParser,
    plugins: Plugins,
    file: Optional[Path] = None,
    header: Optional[str] = None,
) -> Imported:
    """Convert a parsed original configuration (a ``ConfigParser`` works too).

    :param file: the INI file: named in errors; relative paths start at its folder.
    :param header: a comment line for the top of the document.
    """
    base = file.resolve().parent if file is not None else Path.cwd()
    converter = _Converter(file, base, plugins)
    doc = tomlkit.document()
    if header:
        doc.add(tomlkit.comment(header))
        doc.add(tomlkit.comment("Point each relay at a NEW empty folder: see docs/migrating.md"))
        doc.add(tomlkit.nl())
    defaults = dict(parser.defaults())
    for key, value in converter.globals(defaults).items():
        doc[key] = value
    for name in parser.sections():
        own = {
            k: val
            for k, val in parser.items(name, raw=True)
            if k not in defaults or defaults[k] != val
        }
        doc[name] = converter.section(name, own, defaults)
    return Imported(doc, converter.warnings)


def check_loads(imported: Imported, file: Optional[Path], plugins: Plugins) -> Optional[str]:
    """``None`` when the converted text loads, else the loader's one-line error."""
    try:
        parse_config(imported.text(), file, plugins)
    except ConfigError as exc:
        return str(exc)
    return None


class _Converter:
    """Converts values key by key, collecting warnings."""

    def __init__(self, file: Optional[Path], base: Path, plugins: Plugins) -> None:
        self.file, self.base, self.plugins = file, base, plugins
        self.ctx = v.Context(base_dir=base)
        self.warnings: list[str] = []

    def warn(self, section: str, key: str, text: str) -> None:
        self.warnings.append(f"[{section}] '{key}': {text}")

    def none(self, section: str, key: str, why: str) -> None:
        self.warn(section, key, f"no equivalent in escale ({why})")

    def fail(self, section: str, key: Optional[str], problem: str, hint: str = "") -> ConfigError:
        return ConfigError(problem, file=self.file, section=section, key=key, hint=hint or None)

    # -- the global part ---------------------------------------------------------------------

    def globals(self, defaults: Mapping[str, str]) -> dict[str, Any]:
        """Escale's global keys, then section keys set for every section."""
        out: dict[str, Any] = {}
        for key, text in defaults.items():
            norm = schema.normalize_key(key)
            canonical = schema.GLOBAL_KEYS.get(norm)
            if canonical is not None:
                out[canonical] = self.global_value(canonical, key, text)
            elif _kind(norm) in _PER_SECTION:
                continue  # decided per section, from inherited and own values together
            else:
                self.option("DEFAULT", key, text, out)
        return {k: val for k, val in out.items() if val is not None}

    def global_value(self, canonical: str, key: str, text: str) -> Any:
        if canonical in ("log_file", "state_dir"):
            return self.path(text)
        if canonical == "log_level":
            level = _LOG_LEVELS.get(text.strip().lower())
            if level is None:
                raise self.fail("DEFAULT", key, f"unknown log level {text!r}")
            return level
        return self.convert("DEFAULT", key, schema.GLOBAL_BY_NAME[canonical], text)

    # -- one section --------------------------------------------------------------------------

    def section(self, name: str, own: Mapping[str, str], defaults: Mapping[str, str]) -> Any:
        """The TOML table of section ``name``."""
        merged = {**defaults, **own}
        table = tomlkit.table()
        table["path"] = self.path(self.required(name, merged, "path", "local path"))
        table["relay"] = self.relay(name, merged)
        table["relay"].comment("the original's relay: use a new empty folder")
        mode = self.mode(name, merged)
        if mode is not None:
            table["mode"] = mode
        self.encryption(name, merged, table)
        for key, text in own.items():
            norm = schema.normalize_key(key)
            if norm in schema.GLOBAL_KEYS:
                why = "escale keeps every section's state in one folder: state_dir, global"
                if schema.GLOBAL_KEYS[norm] != "state_dir":
                    why = "a global key in escale: write it before the first section"
                self.none(name, key, why)
            elif _kind(norm) not in _PER_SECTION:
                self.option(name, key, text, table)
        return table

    def required(self, section: str, merged: Mapping[str, str], name: str, shown: str) -> str:
        found = _find(merged, name)
        if found is None:
            raise self.fail(section, shown, "missing", "the original required it too")
        return found[1]

    def option(self, section: str, key: str, text: str, out: Any) -> None:
        """Convert one key into ``out`` (or warn that it has no equivalent)."""
        norm = schema.normalize_key(key)
        norm = _ORIGINAL_FIRST.get(norm, norm)
        canonical = schema.SECTION_KEYS.get(norm)
        if norm in schema.OBSOLETE:
            self.none(section, key, schema.OBSOLETE[norm])
        elif norm in WIZARD_ONLY:
            self.none(section, key, "written by the original's wizard for information only")
        elif canonical is None:
            self.none(section, key, "not an option of the original Escale either")
        elif canonical in ("password", "passphrase"):
            as_file = self.secret_file(text)
            out[f"{canonical}_file" if as_file else canonical] = as_file or text.strip()
        else:
            handler = getattr(self, f"_{canonical}", None)
            option = schema.SECTION_BY_NAME[canonical]
            value = (
                handler(section, key, text) if handler else self.convert(section, key, option, text)
            )
            if value is not None:
                out[canonical] = value

    def convert(self, section: str, key: str, option: schema.Option, text: str) -> Any:
        """Validate with the schema's converter; return the TOML value."""
        try:
            value = option.convert(text, self.ctx)
        except ValueError as exc:
            raise self.fail(section, key, str(exc)) from None
        if option.convert is v.to_path:
            return self.path(text)
        if isinstance(value, list):
            return [item.source if isinstance(item, Pattern) else item for item in value]
        return value

    def path(self, text: str) -> str:
        """``~`` paths stay as written; relative ones start at the INI file's folder."""
        text = text.strip()
        return text if text.startswith("~") or os.path.isabs(text) else str(self.base / text)

    def secret_file(self, text: str) -> Optional[str]:
        """The original took a secret or a file holding it: a file becomes ``*_file``."""
        candidate = Path(os.path.expanduser(text.strip()))
        candidate = candidate if candidate.is_absolute() else self.base / candidate
        return self.path(text) if candidate.is_file() else None

    # -- relay, mode, encryption --------------------------------------------------------------

    def relay(self, section: str, merged: Mapping[str, str]) -> str:
        """protocol + address + port + directory (+ user) as one URL."""
        parts = {
            part: found[1]
            for part in schema.LEGACY_RELAY_PARTS
            if (found := _find(merged, part)) is not None
        }
        if not parts and (found := _find(merged, "relay")) is not None:
            return found[1].strip()
        user = _find(merged, "username")
        try:
            url = legacy_relay_url(parts, user[1] if user else None)
        except ValueError as exc:
            raise self.fail(section, "address", str(exc)) from None
        if user is not None and "@" not in url:
            self.none(section, user[0], "a local or mounted relay has no user")
        return url

    def mode(self, section: str, merged: Mapping[str, str]) -> Optional[str]:
        """``mode``, or the push-only / pull-only flags (which win, as in the original)."""
        flags = set()
        for key, text in merged.items():
            flag = schema.LEGACY_MODE_FLAGS.get(schema.normalize_key(key))
            if flag is not None and self.boolean(section, key, text):
                flags.add(flag[0])
        if len(flags) > 1:
            raise self.fail(section, "push only", "push only and pull only are both set")
        if flags:
            return flags.pop()
        found = _find(merged, "mode")
        if found is None:
            return None
        mode = ORIGINAL_MODES.get(found[1].strip().lower())
        if mode is None:
            accepted = ", ".join(ORIGINAL_MODES)
            raise self.fail(section, found[0], f"unknown mode {found[1]!r} (accepted: {accepted})")
        return mode

    def encryption(self, section: str, merged: Mapping[str, str], table: Any) -> None:
        """``encryption`` (off or absent: ``plain``, with a warning) and its passphrase."""
        found = _find(merged, "encryption")
        key, text = found if found else ("encryption", "off")
        secret = _find(merged, "passphrase")
        name, truth = text.strip().lower(), _truth(text)
        if truth or name == "fernet" or name.startswith("blowfish"):
            cipher = "aes-256-gcm"
            if truth is None:
                self.warn(
                    section,
                    key,
                    f"{text.strip()} becomes aes-256-gcm (authenticated; "
                    "the new repository is encrypted again with the same passphrase)",
                )
        elif name.startswith("native"):
            self.none(section, key, "encryption by the storage service; escale encrypts itself")
            cipher = "aes-256-gcm" if secret else "plain"
        elif truth is False:
            cipher = "plain"
        else:
            raise self.fail(
                section,
                key,
                f"unsupported encryption {text.strip()!r}",
                "the original refused it too: use on, off or fernet",
            )
        if cipher == "plain":
            state = "off" if found else "not set (off in the original)"
            self.warn(
                section,
                key,
                f'{state}: encryption = "plain", the relay sees your files; '
                "set passphrase_file and remove the line to encrypt",
            )
        elif secret is None:
            raise self.fail(
                section,
                key,
                "encryption needs a passphrase",
                "the original refused it too: set passphrase = FILE",
            )
        table["encryption"] = cipher
        if secret is not None:
            self.option(section, secret[0], secret[1], table)

    # -- per-option conversions (named _<canonical>) -------------------------------------------

    def boolean(self, section: str, key: str, text: str) -> bool:
        try:
            return v.to_bool(text, self.ctx)
        except ValueError as exc:
            raise self.fail(section, key, str(exc)) from None

    def _size(self, section: str, key: str, text: str) -> tuple[str, int]:
        try:
            size = v.to_size(text, self.ctx)
        except ValueError as exc:
            raise self.fail(section, key, str(exc)) from None
        shown = text.strip()
        return (shown + "MB" if shown.replace(".", "", 1).isdigit() else shown), size

    def _quota(self, section: str, key: str, text: str) -> str:
        return self._size(section, key, text)[0]  # a bare number is MB, as in the original

    def _max_page_size(self, section: str, key: str, text: str) -> Optional[str]:
        shown, size = self._size(section, key, text)
        if 1024 <= size <= MAX_PAGE:
            return shown
        self.warn(
            section,
            key,
            f"{shown} is above escale's largest pack (256MiB); the default 8MiB is used",
        )
        return None

    def _refresh(self, section: str, key: str, text: str) -> Optional[float]:
        truth = _truth(text)
        if truth:  # the original read booleans first: refresh = 1 meant 30 s
            return 30
        if truth is False:
            self.warn(section, key, f"{text.strip()} crashed the original; the default 30 is used")
            return None
        number = self.convert(section, key, schema.SECTION_BY_NAME["refresh"], text)
        return int(number) if float(number).is_integer() else number

    def _lock_timeout(self, section: str, key: str, text: str) -> Any:
        truth = _truth(text)
        if truth:
            return None
        if truth is False:
            self.none(section, key, "locks never expiring; escale's always expire")
            return None
        return self.convert(section, key, schema.SECTION_BY_NAME["lock_timeout"], text)

    def _checksum(self, section: str, key: str, text: str) -> Optional[str]:
        lowered, truth = text.strip().lower().replace("_", "-"), _truth(text)
        if truth:
            return None
        if truth is False:
            self.none(section, key, "no checksum; escale always checksums contents")
            return None
        if lowered not in self.plugins.checksums:
            self.warn(section, key, f"{text.strip()} is not installed; auto is used")
            return None
        return lowered

    def _checksum_cache(self, section: str, key: str, text: str) -> bool:
        truth = _truth(text)
        if truth is not None:
            return truth
        self.warn(section, key, "a cache file: escale keeps checksums in its state database")
        return True

    def _index(self, section: str, key: str, text: str) -> None:
        self.none(section, key, "escale always bundles small files")

    def _timestamp(self, section: str, key: str, text: str) -> Any:
        truth = _truth(text)
        return text.strip() if truth is None else truth


def _truth(text: str) -> Optional[bool]:
    """``True``/``False`` for the original's booleans (yes/no, on/off, 1/0, true/false), else
    ``None``."""
    try:
        return v.to_bool(text, v.Context(Path.cwd()))
    except ValueError:
        return None


def _kind(norm: str) -> Optional[str]:
    """The canonical name of a key for the per-section decisions."""
    if norm in schema.LEGACY_RELAY_KEYS:
        return schema.LEGACY_RELAY_KEYS[norm]
    if norm in schema.LEGACY_MODE_FLAGS:
        return "mode"
    if norm in schema.GLOBAL_KEYS:
        return None
    return schema.SECTION_KEYS.get(_ORIGINAL_FIRST.get(norm, norm))


def _find(values: Mapping[str, str], kind: str) -> Optional[Entry]:
    """The (key, value) of ``values`` that sets ``kind`` (a canonical name or relay part)."""
    for key, text in values.items():
        norm = schema.normalize_key(key)
        # mode flags (push only...) are read by _Converter.mode itself
        if _kind(norm) == kind and norm not in schema.LEGACY_MODE_FLAGS:
            return key, text
    return None
