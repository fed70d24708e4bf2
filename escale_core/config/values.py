"""Converters from TOML values to typed settings.

Each converter takes the raw value and a :class:`Context` and returns the typed value, or raises
:class:`ValueError` whose message says what is expected; the loader adds file, section and key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..patterns import Pattern, compile_pattern

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")
_UNITS: dict[str, int] = {"": 10**6, "b": 1, "byte": 1, "bytes": 1}
for _i, _prefix in enumerate("kmgtpe", start=1):
    _UNITS[_prefix] = _UNITS[_prefix + "b"] = _UNITS[_prefix + "o"] = 1000**_i
    _UNITS[_prefix + "ib"] = 1024**_i

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class Context:
    """What converters need besides the value.

    :param base_dir: relative paths are resolved against it (the configuration file's folder).
    """

    base_dir: Path


Converter = Callable[[Any, Context], Any]


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def to_bool(value: Any, ctx: Context) -> bool:
    """``true``/``false`` (also the strings yes/no, on/off, 1/0 of the original INI files)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected true or false, got {_type_name(value)} {value!r}")


def to_str(value: Any, ctx: Context) -> str:
    """A non-empty string."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"expected a non-empty string, got {_type_name(value)} {value!r}")


def to_path(value: Any, ctx: Context) -> Path:
    """A path; ``~`` and ``$VARS`` are expanded, relative paths start at the config's folder."""
    text = to_str(value, ctx)
    if "\x00" in text:
        raise ValueError("expected a path, got a string with a NUL character")
    path = Path(os.path.expandvars(os.path.expanduser(text)))
    return path if path.is_absolute() else ctx.base_dir / path


def to_int(minimum: int) -> Converter:
    """An integer ``>= minimum``."""

    def convert(value: Any, ctx: Context) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"expected an integer >= {minimum}, got {_type_name(value)} {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"expected an integer >= {minimum}, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"expected an integer >= {minimum}, got {number}")
        return number

    return convert


def to_size(value: Any, ctx: Context) -> int:
    """A size in bytes: ``"2GB"``, ``"200 MiB"``, ``"1.5G"``; a bare number means MB."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f'expected a size like "2GB" or "200 MiB", got {_type_name(value)}')
    match = _SIZE.match(str(value))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(f'expected a size like "2GB", "200 MiB" or a number of MB, got {value!r}')
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"expected a positive size, got {value!r}")
    return size


def to_duration(default: float) -> Converter:
    """Seconds: a number, or ``"30s"``, ``"10m"``, ``"2h"``, ``"3d"``; ``true`` = the default."""

    def convert(value: Any, ctx: Context) -> float:
        if value is True:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match and match.group(2).lower() in _SECONDS and float(match.group(1)) > 0:
            return float(match.group(1)) * _SECONDS[match.group(2).lower()]
        raise ValueError(
            f'expected a positive duration like 30, "90s", "10m" or "3d", got {value!r}'
        )

    return convert


def to_positive_float(value: Any, ctx: Context) -> float:
    """A number of seconds greater than zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number of seconds > 0, got {_type_name(value)} {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"expected a number of seconds > 0, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise ValueError(f"expected a number of seconds > 0, got {value!r}")
    return number


def to_str_list(value: Any, ctx: Context) -> list[str]:
    """An array of strings, or one comma-separated string (as in the original INI files)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ValueError(f"expected an array of strings, got {_type_name(value)} {value!r}")


def to_patterns(value: Any, ctx: Context) -> list[Pattern]:
    """Filter patterns: wildcards (``*.jpg``) or ``/regex/``."""
    return [compile_pattern(text) for text in to_str_list(value, ctx)]


def to_extensions(value: Any, ctx: Context) -> list[str]:
    """File extensions, with or without the leading dot, stored without it."""
    return [ext.lstrip(".").lower() for ext in to_str_list(value, ctx) if ext.lstrip(".")]


def to_int_list(value: Any, ctx: Context) -> list[int]:
    """An array of integers (error codes), or a comma-separated string."""
    items: Sequence[Any] = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (list, tuple)):
        try:
            return [int(v) for v in items if not isinstance(v, bool) and str(v).strip()]
        except ValueError:
            pass
    raise ValueError(f"expected an array of integer codes like [503, 104], got {value!r}")


def to_table(value: Any, ctx: Context) -> dict[str, Any]:
    """A TOML table."""
    if isinstance(value, dict):
        return dict(value)
    raise ValueError(f"expected a table ([section.relay_options]), got {_type_name(value)}")


def to_choice(choices: dict[str, str]) -> Converter:
    """One of ``choices`` (keys are accepted spellings, values the canonical names)."""

    def convert(value: Any, ctx: Context) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return choices[value.strip().lower()]
        expected = ", ".join(sorted(set(choices.values())))
        raise ValueError(f"expected one of {expected}, got {value!r}")

    return convert


def to_bool_or_str(value: Any, ctx: Context) -> Any:
    """``true``, ``false`` or a string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        return value.strip()
    raise ValueError(f"expected true, false or a string, got {_type_name(value)} {value!r}")


def optional(converter: Converter) -> Callable[[Any, Context], Optional[Any]]:
    """``converter``, but ``false`` or an empty string mean "not set"."""

    def convert(value: Any, ctx: Context) -> Optional[Any]:
        if value is False or value == "":
            return None
        return converter(value, ctx)

    return convert
