"""Typed configuration objects, as the rest of escale sees them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

from ..address import RelayAddress
from ..errors import ConfigError
from ..patterns import Pattern
from ..versions import VersionPolicy

_SECRET_WORDS = ("secret", "password", "token", "passphrase", "credential")
_SECRET_NAMES = {"key", "access_key", "secret_key", "aws_access_key_id", "client_id"}
MASK = "********"


@dataclass
class SectionConfig:
    """One section (repository) of the configuration, validated, with defaults applied.

    The fields are the section keys of :mod:`escale_core.config.schema`; ``name``, ``file``,
    ``address`` and ``explicit`` (the keys the file sets) describe where it comes from.
    """

    name: str
    file: Optional[Path]
    address: RelayAddress
    explicit: frozenset[str]
    path: Path
    relay: str
    relay_options: dict[str, Any]
    username: Optional[str]
    password: Optional[str]
    password_file: Optional[Path]
    client: str
    mode: str
    encryption: str
    passphrase: Optional[str]
    passphrase_file: Optional[Path]
    pullers: int
    quota: Optional[int]
    refresh: float
    watch: bool
    rescan_interval: float
    include: list[Pattern]
    exclude: list[Pattern]
    include_directories: list[Pattern]
    exclude_directories: list[Pattern]
    file_types: list[str]
    checksum: str
    checksum_cache: bool
    index: Union[bool, str]
    max_page_size: int
    lock_timeout: float
    wait_on_error: list[int]
    propagate_deletions: bool
    timestamp: Union[bool, str]
    verbosity: int
    versions: str
    versions_keep: int
    versions_max_age: Optional[float]

    @property
    def versions_policy(self) -> VersionPolicy:
        """Which previous versions of local files are kept (``versions``, ``versions_keep``,
        ``versions_max_age``)."""
        return VersionPolicy(self.versions, self.versions_keep, self.versions_max_age)

    def settings(self) -> dict[str, Any]:
        """The section keys and their values, secrets masked, ready for TOML or JSON output."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("name", "file", "address", "explicit"):
                continue
            out[f.name] = _displayable(f.name, getattr(self, f.name))
        out["relay"] = self.address.display()
        return out

    def read_passphrase(self) -> bytes:
        """The passphrase, from ``passphrase`` or the first line of ``passphrase_file``.

        :raises ConfigError: neither is set, or the file cannot be read or is empty.
        """
        if self.passphrase is not None:
            return self.passphrase.encode()
        key = "passphrase_file"
        if self.passphrase_file is None:
            raise ConfigError(
                f"encryption '{self.encryption}' needs a passphrase",
                file=self.file,
                section=self.name,
                key="encryption",
                hint='set passphrase_file, or encryption = "plain"',
            )
        try:
            text = self.passphrase_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read {self.passphrase_file}: {getattr(exc, 'strerror', None) or exc}",
                file=self.file,
                section=self.name,
                key=key,
            ) from None
        if not text or not text[0].strip():
            raise ConfigError(
                f"{self.passphrase_file} is empty",
                file=self.file,
                section=self.name,
                key=key,
                hint="write the passphrase on its first line",
            )
        return text[0].strip().encode()


@dataclass
class GlobalConfig:
    """The global keys (before the first table)."""

    log_file: Optional[Path] = None
    log_level: str = "info"
    log_rotate: int = 3
    state_dir: Optional[Path] = None


@dataclass
class Config:
    """A whole configuration file."""

    file: Optional[Path]
    globals: GlobalConfig = field(default_factory=GlobalConfig)
    sections: dict[str, SectionConfig] = field(default_factory=dict)

    def section(self, name: str) -> SectionConfig:
        """Return the section ``name``.

        :raises ConfigError: no such section; the message lists the known ones.
        """
        if name in self.sections:
            return self.sections[name]
        known = ", ".join(self.sections) or "none"
        raise ConfigError(f"no section [{name}] (sections: {known})", file=self.file)


def is_secret_option(name: str) -> bool:
    """Whether a ``relay_options`` key holds a secret."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)


def _displayable(name: str, value: Any) -> Any:
    if name in ("password", "passphrase") and value is not None:
        return MASK
    if name == "relay_options":
        return {k: (MASK if is_secret_option(k) else v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [str(item) if isinstance(item, Pattern) else item for item in value]
    return value


def to_toml(section: SectionConfig) -> str:
    """Render the effective settings of ``section`` as TOML, marking defaults."""
    lines = [f"[{_toml_key(section.name)}]"]
    tables = []
    for key, value in section.settings().items():
        if value is None:
            lines.append(f"# {key} is not set")
            continue
        if isinstance(value, dict):
            if value:
                tables.append((key, value))
            continue
        comment = "" if key in section.explicit else "  # default"
        lines.append(f"{key} = {_toml_value(value)}{comment}")
    for key, table in tables:
        lines.append(f"[{_toml_key(section.name)}.{key}]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum()
    return key if bare else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)
