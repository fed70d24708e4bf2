"""Changing a configuration file in place, its comments and layout kept (tomlkit).

Used by the operations that write the configuration (``escale init``, ``escale migrate``,
``escale key passwd``). The file is replaced atomically: a temporary file in the same folder,
with the same permissions, fsynced, then renamed over it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from ..errors import ConfigError, FileWriteError
from .schema import SECTION_KEYS, normalize_key


def _read_document(path: Path) -> tomlkit.TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"cannot read it: {getattr(exc, 'strerror', None) or exc}"
        raise ConfigError(problem, file=path) from None
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=path) from None


def write_atomically(path: Path, text: str, mode: int = 0o600, *, config: bool = True) -> None:
    """Replace ``path`` by ``text``: temp file in the same folder, fsync, rename.

    :param mode: the permissions of a new file (an existing file keeps its own).
    :param config: ``path`` is a configuration file (a failure exits with status 2).
    :raises FileWriteError: the file cannot be written (names it and the reason)."""
    try:
        _write_atomically(path, text, mode)
    except OSError as exc:
        raise FileWriteError(path, exc, config=config) from None


def _write_atomically(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        mode = path.stat().st_mode & 0o7777
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _key_in(table: Mapping[str, Any], key: str) -> str:
    """The key as the table spells it (``local path`` for ``path``...), else ``key``."""

    def canonical(name: str) -> str:
        norm = normalize_key(name)
        return SECTION_KEYS.get(norm, norm)

    wanted = canonical(key)
    for existing in table:
        if canonical(existing) == wanted:
            return str(existing)
    return key


def update_section(
    path: Path, section: str, values: Mapping[str, Any], *, create: bool = False
) -> None:
    """Set ``values`` in table ``section`` of the TOML file ``path``, everything else kept.

    A key already spelled otherwise in the file (an original Escale alias, another case) is
    replaced where it is. A value ``None`` removes the key.

    :param create: add the table if missing (else a missing section is a ``ConfigError``).
    :raises ConfigError: unreadable or invalid file; the section is missing or exists when
        ``create`` asks for a new one.
    """
    document = _read_document(path)
    if section not in document:
        if not create:
            raise ConfigError(f"no section [{section}]", file=path)
        document.add(section, tomlkit.table())
    table = document[section]
    if not isinstance(table, Mapping):
        raise ConfigError(f"'{section}' is not a table", file=path)
    for key, value in values.items():
        name = _key_in(table, key)
        if value is None:
            if name in table:
                del table[name]  # type: ignore[attr-defined]
        else:
            table[name] = value  # type: ignore[index]
    write_atomically(path, tomlkit.dumps(document))


def section_exists(path: Path, section: str) -> bool:
    """Whether the TOML file ``path`` has a table ``section`` (``False``: no file)."""
    return path.exists() and section in _read_document(path)
