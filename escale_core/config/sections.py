"""Validation of one section, and of the sections against each other."""

from __future__ import annotations

import copy
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Optional

from ..address import RelayAddress, parse_relay_url
from ..errors import ConfigError, MissingDependencyError
from . import schema
from .legacy import legacy_relay_url
from .model import Config, SectionConfig
from .values import Context, to_bool, to_str

if TYPE_CHECKING:
    from ..plugins import Plugins

log = logging.getLogger("escale.config")

Raw = dict[str, tuple[str, Any]]


class _Section:
    """Validates one section: ``raw`` maps canonical keys to (key as written, value)."""

    def __init__(
        self, name: str, raw: Raw, file: Optional[Path], ctx: Context, plugins: Plugins
    ) -> None:
        self.name, self.raw, self.file, self.ctx, self.plugins = name, raw, file, ctx, plugins

    def fail(self, problem: str, key: str, hint: Optional[str] = None) -> NoReturn:
        written = self.raw[key][0] if key in self.raw else key
        raise ConfigError(problem, file=self.file, section=self.name, key=written, hint=hint)

    def build(self) -> SectionConfig:
        for canonical, (key, _) in self.raw.items():
            if canonical in schema.OBSOLETE:
                log.warning(
                    "%s: [%s] %s: has no effect in escale (%s); remove it",
                    self.file,
                    self.name,
                    key,
                    schema.OBSOLETE[canonical],
                )
        self._legacy_relay()
        self._legacy_mode()
        values: dict[str, Any] = {}
        for option in schema.SECTION_OPTIONS:
            if option.name in self.raw:
                try:
                    values[option.name] = option.convert(self.raw[option.name][1], self.ctx)
                except ValueError as exc:
                    self.fail(str(exc), option.name)
            elif option.default is schema.REQUIRED:
                self.fail(
                    f"missing required key '{option.name}'",
                    option.name,
                    hint=_REQUIRED_HINTS.get(option.name),
                )
            else:
                values[option.name] = copy.deepcopy(option.default)
        if not 1024 <= values["max_page_size"] <= MAX_PAGE:
            self.fail(
                "expected a size between 64 KiB and 256 MiB",
                "max_page_size",
                hint="pullers refuse larger objects",
            )
        address = self._address(values)
        self._check_path(values["path"], address)
        self._check_credentials(values, address)
        values["client"] = values["client"] or default_client_name(self.name)
        # a longer name would make every other client refuse this one's updates
        if len(values["client"].encode()) > MAX_CLIENT_NAME:
            self.fail(f"expected a client name of at most {MAX_CLIENT_NAME} bytes", "client")
        values["encryption"] = self._cipher(values)
        values["checksum"] = self._checksum(values["checksum"])
        return SectionConfig(
            name=self.name, file=self.file, address=address, explicit=frozenset(self.raw), **values
        )

    def _legacy_relay(self) -> None:
        parts = {p: self.raw[p] for p in schema.LEGACY_RELAY_PARTS if p in self.raw}
        if not parts:
            return
        if "relay" in self.raw:
            self.fail(
                "set together with 'relay'",
                next(iter(parts)),
                hint='keep only relay = "scheme://host/path"',
            )
        text = {
            p: str(to_str(v, self.ctx)) if not isinstance(v, int) else str(v)
            for p, (_, v) in parts.items()
        }
        try:  # the user stays in its own key (username), as written
            url = legacy_relay_url(text)
        except ValueError as exc:
            self.fail(str(exc), next(iter(parts)), hint='or set relay = "scheme://host/path"')
        self.raw["relay"] = ("relay", url)

    def _legacy_mode(self) -> None:
        flags = [(f, self.raw[f]) for f in schema.LEGACY_MODE_FLAGS if f in self.raw]
        modes = set()
        for flag, (_, value) in flags:
            try:
                if to_bool(value, self.ctx):
                    modes.add(schema.LEGACY_MODE_FLAGS[flag][0])
            except ValueError as exc:
                self.fail(str(exc), flag)
        if len(modes) > 1:
            self.fail(
                "push-only and pull-only are both set",
                flags[0][0],
                hint='set mode = "shared" instead',
            )
        if modes:
            if "mode" in self.raw:
                self.fail("set together with 'mode'", flags[0][0], hint="keep only mode")
            self.raw["mode"] = (flags[0][1][0], modes.pop())

    def _address(self, values: dict[str, Any]) -> RelayAddress:
        relays = self.plugins.relays
        multipath = frozenset(e.name for e in relays if e.options.get("multipath"))
        try:
            address = parse_relay_url(values["relay"], multipath)
        except ValueError as exc:
            self.fail(str(exc), "relay")
        if address.scheme not in relays or relays.get(address.scheme).options.get("for_tests"):
            self._refuse_scheme(address.scheme, values["relay"])
        entry = relays.get(address.scheme)
        if entry.options.get("needs_host") and not address.host and address.mount is None:
            self.fail(
                f"'{values['relay']}' names no host (or bucket)",
                "relay",
                hint=f"write {address.scheme}://host/path",
            )
        # a multi-path address names a locally mounted storage: no backend package needed
        if address.mount is None and entry.missing():
            self.fail(
                f"relay scheme '{address.scheme}' needs {', '.join(entry.missing())}",
                "relay",
                hint=entry.install_hint or None,
            )
        return address

    def _refuse_scheme(self, scheme: str, url: str) -> NoReturn:
        """A scheme no installed plugin serves, or one that cannot keep a repository."""
        relays = self.plugins.relays
        known = ", ".join(
            n
            for n in relays.names()
            if relays.get(n).available and not relays.get(n).options.get("for_tests")
        )
        if scheme in relays:  # memory: nothing kept between two runs
            self.fail(
                f"'{scheme}://' keeps nothing once escale exits, so it cannot serve as a relay "
                "(it is for tests and the Python API)",
                "relay",
                hint=f"use one of: {known}",
            )
        if scheme in ("http", "https"):  # read-only in fsspec; WebDAV is what users mean
            dav = "webdavs" if scheme == "https" else "webdav"
            self.fail(
                f"unknown relay scheme '{scheme}'",
                "relay",
                hint=f"a WebDAV server is written {dav}://{url.split('://', 1)[1]}",
            )
        self.fail(
            f"unknown relay scheme '{scheme}'",
            "relay",
            hint=f"installed: {known}; a plugin such as escale-relay-{scheme} may provide it",
        )

    def _check_path(self, path: Path, address: RelayAddress) -> None:
        if path.exists() and not path.is_dir():
            self.fail(f"{path} exists and is not a folder", "path")
        folder = _local_relay_folder(address)
        if folder is not None:
            local, relay = path.resolve(), folder.resolve()
            if local == relay or local in relay.parents or relay in local.parents:
                self.fail(
                    f"the relay folder {relay} and the local folder {local} overlap",
                    "relay",
                    hint="put the relay outside the synced folder",
                )

    def _check_credentials(self, values: dict[str, Any], address: RelayAddress) -> None:
        for secret in ("password", "passphrase"):
            if values[secret] is not None and values[f"{secret}_file"] is not None:
                self.fail(f"set together with '{secret}_file'", secret, hint="keep one of them")
        for key in ("password_file", "passphrase_file"):
            file = values[key]
            if file is None:
                continue
            try:
                lines = file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                self.fail(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}", key)
            if not lines or not lines[0].strip():
                self.fail(f"{file} is empty", key, hint="write the secret on its first line")
        user = values["username"]
        if user and address.username and user != address.username:
            self.fail(
                f"'{user}' differs from the user '{address.username}' in the relay URL", "username"
            )

    def _cipher(self, values: dict[str, Any]) -> str:
        value = values["encryption"]
        name = ("aes-256-gcm" if value else "plain") if isinstance(value, bool) else value.lower()
        ciphers = self.plugins.ciphers
        if name not in ciphers:
            self.fail(
                f"unknown cipher '{value}'",
                "encryption",
                hint=f"use one of {', '.join(ciphers.names())}",
            )
        try:
            ciphers.get(name).load()
        except MissingDependencyError as exc:
            self.fail(str(exc), "encryption")
        if name != "plain" and values["passphrase"] is None and values["passphrase_file"] is None:
            self.fail(
                f"cipher '{name}' needs a passphrase",
                "encryption",
                hint='set passphrase_file = "..." (escale init writes one), or '
                'encryption = "plain"',
            )
        return name

    def _checksum(self, value: Any) -> str:
        if value is False:
            self.fail(
                "escale always checksums file contents",
                "checksum",
                hint="remove the key or name an algorithm such as blake2b",
            )
        name = "auto" if value is True else str(value).lower().replace("_", "-")
        checksums = self.plugins.checksums
        if name != "auto" and name not in checksums:
            self.fail(
                f"unknown checksum '{value}'",
                "checksum",
                hint=f"use auto or one of {', '.join(checksums.names())}",
            )
        return name


MAX_CLIENT_NAME = 255  # the longest client name pullers accept (escale_core.manifest.MAX_NAME)
MAX_PAGE = 256 * 1024**2  # the largest object pullers accept (escale_core.fetch.MAX_OBJECT)

_REQUIRED_HINTS = {
    "path": 'the local folder to sync, e.g. path = "~/Photos"',
    "relay": 'the relay address, e.g. relay = "sftp://me@host/srv/escale" or "/mnt/usb/relay"',
}


def build_section(
    name: str, raw: Raw, file: Optional[Path], ctx: Context, plugins: Plugins
) -> SectionConfig:
    """Validate one section; ``raw`` maps canonical keys to (key as written, value)."""
    return _Section(name, dict(raw), file, ctx, plugins).build()


def check_sections(config: Config) -> None:
    """Two sections must not sync the same local folder, nor one inside the other."""
    seen: list[tuple[Path, SectionConfig]] = []
    for section in config.sections.values():
        local = section.path.resolve()
        for other_path, other in seen:
            if local == other_path or other_path in local.parents or local in other_path.parents:
                raise ConfigError(
                    f"the local folder {local} is also synced by section [{other.name}] "
                    f"({other_path})",
                    file=config.file,
                    section=section.name,
                    key=next((k for k in ("path",) if k in section.explicit), "path"),
                    hint="give each section its own folder",
                )
        seen.append((local, section))


def _local_relay_folder(address: RelayAddress) -> Optional[Path]:
    """The local folder a relay address stores into, if it is local."""
    if address.mount is not None:
        return Path(address.mount) / address.path
    if address.scheme in ("file", "local") and address.path:
        return Path(address.path)
    return None


def default_client_name(section: str) -> str:
    """The host name, or the section name when the host calls itself localhost."""
    host = socket.gethostname().split(".")[0]
    return section if not host or host == "localhost" else host
