"""Find, read and validate the TOML configuration.

Search order: ``-c FILE``, then ``$ESCALE_CONFIG``, then ``escale.toml`` in the user config
directory. Every error is one :class:`~escale_core.errors.ConfigError` naming the file, the
section and the key (or the line, for TOML syntax errors).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from ..errors import ConfigError
from . import schema
from .model import Config, GlobalConfig, SectionConfig
from .sections import build_section, check_sections
from .values import Context

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

if TYPE_CHECKING:
    from ..plugins import Plugins

log = logging.getLogger("escale.config")

CONFIG_NAME = "escale.toml"
_TOML_LOCATION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def user_config_path() -> Path:
    """``escale.toml`` in the user configuration directory."""
    import platformdirs

    return Path(platformdirs.user_config_dir("escale")) / CONFIG_NAME


def find_config_file(explicit: Optional[Union[str, Path]] = None) -> Path:
    """Return the configuration file to use.

    :param explicit: the ``-c`` option, if given.
    :raises ConfigError: the file named by ``-c`` or ``$ESCALE_CONFIG`` does not exist, or no
        file was found at all.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("ESCALE_CONFIG")
    if env:
        return Path(env).expanduser()
    default = user_config_path()
    if default.exists():
        return default
    raise ConfigError(
        f"no configuration file: none given with -c, $ESCALE_CONFIG is not set, and {default} "
        "does not exist",
        hint="write one (see docs/config.md) or run 'escale init'",
    )


def load_config(
    path: Optional[Union[str, Path]] = None, plugins: Optional[Plugins] = None
) -> Config:
    """Find, read and validate the configuration.

    :param path: the file (``-c``); ``None`` searches the usual places.
    :param plugins: the loaded plugins, used to validate relay schemes, ciphers and checksums.
    :raises ConfigError: anything wrong, with file, section and key.
    """
    file = find_config_file(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the configuration file: {exc.strerror or exc}", file=file
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            "invalid TOML: the file is not UTF-8 text", file=file, line=line
        ) from None
    return parse_config(text, file, plugins)


def parse_config(
    text: str, file: Optional[Path] = None, plugins: Optional[Plugins] = None
) -> Config:
    """Validate configuration ``text``; ``file`` is named in errors and anchors relative paths."""
    if plugins is None:
        from ..plugins import get_plugins

        plugins = get_plugins()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        located = _TOML_LOCATION.search(message)
        line = int(located.group(1)) if located else None
        problem = _TOML_LOCATION.sub("", message)
        if located:
            problem += f" (column {located.group(2)})"
        raise ConfigError(f"invalid TOML: {problem}", file=file, line=line) from None
    base = file.parent.resolve() if file is not None else Path.cwd()
    ctx = Context(base_dir=base)
    globals_raw = {k: val for k, val in raw.items() if not isinstance(val, dict)}
    tables = {k: val for k, val in raw.items() if isinstance(val, dict)}
    config = Config(file=file)
    defaults = _read_globals(config, globals_raw, ctx)
    for name, table in tables.items():
        if not name.strip():
            raise ConfigError("a section name must not be empty", file=file, section=name)
        merged = {**defaults, **_fold(table, file, name)}
        config.sections[name] = build_section(name, merged, file, ctx, plugins)
    check_sections(config)
    return config


def _fold(table: dict[str, Any], file: Optional[Path], section: Optional[str]) -> dict[str, Any]:
    """Fold key spellings; two spellings of one key in one table is an error."""
    folded: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in table.items():
        canonical = _canonical(key, file, section)
        if canonical in written:
            raise ConfigError(
                f"set twice, also as '{written[canonical]}'",
                file=file,
                section=section,
                key=key,
                hint="keep one of them",
            )
        written[canonical] = key
        folded[canonical] = (key, value)
    return folded


def _canonical(key: str, file: Optional[Path], section: Optional[str]) -> str:
    norm = schema.normalize_key(key)
    if section is None and norm in schema.GLOBAL_KEYS:
        return schema.GLOBAL_KEYS[norm]
    for table in (schema.SECTION_KEYS, schema.LEGACY_RELAY_KEYS):
        if norm in table:
            return table[norm]
    if norm in schema.LEGACY_MODE_FLAGS or norm in schema.OBSOLETE:
        return norm
    known = list(schema.SECTION_KEYS) + (list(schema.GLOBAL_KEYS) if section is None else [])
    close = difflib.get_close_matches(norm, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "see docs/config.md for the keys"
    where = "global key" if section is None else "key"
    raise ConfigError(f"unknown {where}", file=file, section=section, key=key, hint=hint)


def _read_globals(config: Config, raw: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Set the global keys; return section keys written at top level (defaults for sections)."""
    defaults: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for canonical, (key, value) in _fold(raw, config.file, None).items():
        option = schema.GLOBAL_BY_NAME.get(canonical)
        if option is None:
            if canonical == "path":
                raise ConfigError(
                    "the local path belongs in a section, not at the top level",
                    file=config.file,
                    key=key,
                    hint="move it under [section]",
                )
            defaults[canonical] = (key, value)
            continue
        try:
            values[canonical] = option.convert(value, ctx)
        except ValueError as exc:
            raise ConfigError(str(exc), file=config.file, key=key) from None
    config.globals = GlobalConfig(**values)
    return defaults


__all__ = [
    "Config",
    "SectionConfig",
    "find_config_file",
    "load_config",
    "parse_config",
    "user_config_path",
]
