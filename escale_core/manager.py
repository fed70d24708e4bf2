"""The original Escale's manager API, on top of the new engine (see docs/api.md).

``Manager(relay, repository=..., address=..., directory=...).run()`` still works in spirit:
``relay`` is a relay scheme (``"file"``, ``"webdav"``...) or a relay class, ``repository`` the
local folder, ``address``/``directory`` where the repository lives on the relay.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

from .access import AccessAttributes, AccessController, Accessor
from .address import RelayAddress, parse_address, parse_relay_url
from .checksum import checksum_factory, resolve_checksum
from .config import Config, load_config
from .config.sections import default_client_name
from .engine import Engine, RoundReport, SyncOptions
from .errors import UsageError
from .history import LocalState, TimeQuotaController
from .local import Filters, hash_file, stat_file
from .patterns import compile_pattern
from .plugins import get_plugins
from .relay import Relay, open_relay
from .repository import open_repository
from .state import state_dir, state_file

__all__ = [
    "AccessAttributes",
    "AccessController",
    "Accessor",
    "ChecksumCache",
    "History",
    "IndexManager",
    "Manager",
    "TimeQuotaController",
    "get_cache_file",
    "get_client_name",
    "get_dist_file",
    "get_pid_file",
    "parse_address",
    "parse_section",
]

log = logging.getLogger("escale.manager")
_MODES = {
    "share": "shared",
    "shared": "shared",
    "upload": "upload",
    "download": "download",
    "conservative": "conservative",
}


def get_client_name(repository: str, config: Optional[dict[str, Any]] = None) -> str:
    """The client name of section ``repository``: ``client``/``client name`` or the host name."""
    for key in ("client", "client name", "client_name"):
        if config and config.get(key):
            return str(config[key])
    return default_client_name(repository)


def _config(config: Union[str, Path, Config, None]) -> Optional[Config]:
    if config is None or isinstance(config, Config):
        return config
    return load_config(config)


def get_cache_file(
    config: Union[str, Path, Config, None] = None,
    section: Optional[str] = None,
    prefix: str = "",
    previously: Optional[str] = None,
) -> Path:
    """The state database of ``section`` (``prefix`` and ``previously`` are ignored: one
    database per section holds what the original kept in several files)."""
    loaded = _config(config)
    return state_file(section or "default", state_dir(loaded.globals.state_dir if loaded else None))


def get_dist_file(
    default_dirs: Optional[dict[str, str]] = None,
    filename: Optional[str] = None,
    config: Union[str, Path, Config, None] = None,
    section: Optional[str] = None,
    options: Any = None,
) -> Path:
    """A file named ``filename`` (default ``escale``) in the state folder."""
    loaded = _config(config)
    folder = state_dir(loaded.globals.state_dir if loaded else None)
    name = filename or "escale"
    return folder / (f"{section}-{name}" if section else name)


def get_pid_file(config: Union[str, Path, Config, None] = None) -> Path:
    """The daemon's pid file."""
    return get_dist_file(filename="escale.pid", config=config)


def parse_section(
    config: Union[str, Path, Config], repository: str, logger: Optional[logging.Logger] = None
) -> tuple[Any, dict[str, Any]]:
    """The relay factory of a section and the arguments of :class:`Manager`."""
    loaded = _config(config)
    assert loaded is not None
    section = loaded.section(repository)
    factory = get_plugins().relays.get(section.address.scheme).load()
    return factory, {
        "section": section,
        "address": section.address,
        "repository": str(section.path),
        "clientname": section.client,
        "count": section.pullers,
        "encryption": section.encryption,
        "relay_options": section.relay_options,
    }


class History(LocalState):
    """The local state of a repository (what the original kept in its history files).

    :param repository: section name.
    :param persistent: the state folder (default: the user state folder).
    """

    def __init__(
        self,
        repository: Optional[str] = None,
        persistent: Union[str, Path, None] = None,
        **super_args: Any,
    ) -> None:
        super().__init__(repository or "default", Path(persistent) if persistent else state_dir())


class ChecksumCache:
    """Checksums of local files, valid while (size, mtime, inode) are unchanged.

    :param cache: a :class:`LocalState` (or :class:`History`) to store them in.
    """

    def __init__(self, cache: LocalState, algorithm: str = "auto") -> None:
        self.state = cache
        self.factory = checksum_factory(algorithm, get_plugins().checksums)

    def checksum(self, root: Path, relpath: str) -> Optional[str]:
        """The checksum of ``root/relpath``, computed only if the file changed."""
        from .history import FileRecord

        info = stat_file(root / relpath)
        if info is None:
            return None
        record = self.state.files.get(relpath)
        if record is not None and record.matches(info) and record.checksum:
            return record.checksum
        value = hash_file(root / relpath, self.factory)
        self.state.set(
            relpath,
            record._replace(
                size=info.size, mtime_ns=info.mtime_ns, inode=info.inode, checksum=value
            )
            if record is not None  # the sync history (version, author...) stays
            else FileRecord(info.size, info.mtime_ns, info.inode, value, None, None),
        )
        return value


class Manager:
    """Glue between the local folder, the relay and the encryption layer (one section).

    :param relay: relay scheme name, or a relay factory ``factory(address, **options)``.
    :param repository: the local folder.
    :param address: the relay host, or a whole relay URL.
    :param directory: the repository folder on the relay.
    :param encryption: cipher name (``"plain"`` for none); then pass ``passphrase=...``.
    :param clientname: this client's name (default: the host name).
    :param count: pullers: an update is deleted once this many clients acknowledged it.
    :param tq_controller: a :class:`TimeQuotaController` (refresh and quota).
    """

    def __init__(
        self,
        relay: Any,
        repository: Union[str, Path, None] = None,
        address: Optional[str] = None,
        directory: Optional[str] = None,
        encryption: str = "plain",
        timestamp: Union[bool, str] = True,
        refresh: Union[bool, float] = True,
        clientname: Optional[str] = None,
        filetype: Optional[list[str]] = None,
        include: Optional[list[str]] = None,
        exclude: Optional[list[str]] = None,
        tq_controller: Optional[TimeQuotaController] = None,
        count: Optional[int] = None,
        checksum: Union[bool, str] = True,
        checksum_cache: Any = None,
        includedirectory: Optional[list[str]] = None,
        excludedirectory: Optional[list[str]] = None,
        waitonerror: Optional[list[int]] = None,
        verbosity: int = 1,
        **relay_args: Any,
    ) -> None:
        if repository is None:
            raise UsageError("Manager needs the local folder (repository=...)")
        self.path = Path(repository).expanduser()
        self.passphrase: Optional[bytes] = relay_args.pop("passphrase", None)
        if isinstance(self.passphrase, str):
            self.passphrase = self.passphrase.encode()
        self.state_dir = Path(relay_args.pop("state_dir", state_dir()))
        self.section = relay_args.pop("section_name", self.path.name or "default")
        self.client = clientname or get_client_name(self.section)
        self.encryption = encryption or "plain"
        self.checksum = "auto" if checksum is True else str(checksum)
        self.count = count or 1
        self.tq_controller = tq_controller or TimeQuotaController(refresh)
        self.address = self._address(relay, address, directory)
        self.relay_factory = relay if callable(relay) and not isinstance(relay, str) else None
        self.relay_args = relay_args
        self.filters = Filters(
            [t.lstrip(".").lower() for t in filetype or []],
            [compile_pattern(p) for p in include or []],
            [compile_pattern(p) for p in exclude or []],
            [compile_pattern(p) for p in includedirectory or []],
            [compile_pattern(p) for p in excludedirectory or []],
        )
        self.timestamp = timestamp
        self.mode = _MODES.get(relay_args.pop("mode", "shared"), "shared")

    @staticmethod
    def _address(relay: Any, address: Optional[str], directory: Optional[str]) -> RelayAddress:
        if address and "://" in address:
            return parse_relay_url(address, frozenset({"file", "gdrive"}))
        scheme = relay if isinstance(relay, str) else "file"
        if scheme == "file" or not address:
            return parse_relay_url(
                f"file://{Path(directory or address or '.').expanduser().absolute()}"
            )
        path = "/" + (directory or "").lstrip("/")
        return parse_relay_url(f"{scheme}://{address}{path}")

    def _relay(self) -> Relay:
        if self.relay_factory is not None:
            relay: Relay = self.relay_factory(self.address, **self.relay_args)
            return relay
        return open_relay(self.address, get_plugins().relays, **self.relay_args)

    def sync_once(self, force: bool = False) -> RoundReport:
        """One round: push, pull, acknowledge, collect; return what happened."""
        plugins = get_plugins()
        relay = self._relay()
        try:
            repo = open_repository(
                relay,
                plugins.ciphers,
                self.passphrase,
                create_cipher=self.encryption,
                create_checksum=resolve_checksum(self.checksum, plugins.checksums),
            )
            state = LocalState(self.section, self.state_dir)
            try:
                options = SyncOptions(
                    self.path,
                    self.client,
                    self.mode,
                    self.filters,
                    self.count,
                    self.tq_controller.quota_bytes,
                    force=force,
                    restore_mtime=self.timestamp is not False,
                )
                return Engine(repo, state, options, plugins.checksums).run_round()
            finally:
                state.close()
        finally:
            relay.close()

    def sanityChecks(self) -> None:
        """Repair this client's interrupted work (done at the start of every round)."""
        self.sync_once()

    def upload(self) -> RoundReport:
        """Push local changes (and pull, as every round does)."""
        return self.sync_once()

    def download(self) -> RoundReport:
        """Pull others' changes (and push, as every round does)."""
        return self.sync_once()

    def run(self, rounds: Optional[int] = None) -> None:
        """Sync forever (or ``rounds`` times), pausing adaptively between rounds."""
        done = 0
        while rounds is None or done < rounds:
            report = self.sync_once()
            self.tq_controller.record(report.transferred)
            done += 1
            if rounds is None or done < rounds:
                self.tq_controller.wait()


class IndexManager(Manager):
    """The original's index protocol manager: every escale repository bundles small files now,
    so it is the :class:`Manager` itself."""
