"""The original Escale's manager API, on top of the new engine (see docs/api.md).

``Manager(relay, repository=..., address=..., directory=...).run()`` still works in spirit:
``relay`` is a relay scheme (``"file"``, ``"webdav"``...) or a relay class, ``repository`` the
local folder, ``address``/``directory`` where the repository lives on the relay.
"""

from __future__ import annotations

import configparser
import importlib
import inspect
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .access import AccessAttributes, AccessController, Accessor, original_mode
from .address import RelayAddress, parse_address, parse_relay_url
from .checksum import checksum_factory, resolve_checksum
from .collect import Listing
from .config import Config, load_config, parse_config
from .config.schema import SECTION_BY_NAME
from .config.sections import default_client_name
from .engine import Engine, RoundReport, SyncOptions
from .errors import UsageError
from .history import LocalState, TimeQuotaController
from .local import Filters, hash_file, scan, stat_file
from .patterns import compile_pattern
from .plugins import Plugins, get_plugins
from .relay import Relay, open_relay
from .repository import open_repository
from .session import relay_options, section_state_dir
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
#: The cipher ``encryption=True`` means.
DEFAULT_CIPHER: str = SECTION_BY_NAME["encryption"].default
ConfigLike = Union[str, Path, Config, configparser.RawConfigParser]


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


def _loaded(config: ConfigLike, plugins: Plugins, logger: Optional[logging.Logger]) -> Config:
    """A TOML configuration as is; an original INI one (a ``ConfigParser``) converted as
    ``escale config import`` does, its warnings logged."""
    if not isinstance(config, configparser.RawConfigParser):
        loaded = _config(config)
        assert loaded is not None
        return loaded
    from .ops.importing import convert  # the importer reads the original's options

    source = getattr(config, "filename", None)
    file = Path(source) if isinstance(source, (str, Path)) else None
    imported = convert(config, plugins, file)
    for line in imported.warnings:
        (logger or log).warning("%s", line)
    return parse_config(imported.text(), file, plugins)


def parse_section(
    config: ConfigLike, repository: str, logger: Optional[logging.Logger] = None
) -> tuple[Any, dict[str, Any]]:
    """The relay factory of a section and the arguments of :class:`Manager`, as the original:
    ``Manager(*parse_section(config, "photos"))`` or ``relay, args = parse_section(...)`` then
    ``Manager(relay, **args)``.

    :param config: a TOML file or :class:`Config`, or an original INI configuration as a
        ``configparser.ConfigParser`` (converted as ``escale config import`` does).
    :raises ConfigError: no such section, or an invalid one.
    """
    plugins = get_plugins()
    loaded = _loaded(config, plugins, logger)
    section = loaded.section(repository)
    address = section.address
    local = address.mount is not None or address.scheme in ("file", "local", "memory")
    factory = plugins.relays.get("file" if address.mount is not None else address.scheme).load()
    args: dict[str, Any] = {
        "repository": str(section.path),
        "address": address,
        "encryption": section.encryption,
        "passphrase": None if section.encryption == "plain" else section.read_passphrase(),
        "timestamp": section.timestamp,
        "clientname": section.client,
        "filetype": list(section.file_types),
        "include": [p.source for p in section.include],
        "exclude": [p.source for p in section.exclude],
        "includedirectory": [p.source for p in section.include_directories],
        "excludedirectory": [p.source for p in section.exclude_directories],
        "tq_controller": TimeQuotaController(
            section.refresh, None if section.quota is None else section.quota / 1_000_000
        ),
        "count": section.pullers,
        "checksum": section.checksum,
        "waitonerror": list(section.wait_on_error),
        "verbosity": section.verbosity,
        "mode": section.mode,
        "section_name": section.name,
        "state_dir": section_state_dir(loaded),
    }
    args.update(dict(section.relay_options) if local else relay_options(section))
    return factory, args


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


def _bytes(passphrase: Union[str, bytes, None]) -> Optional[bytes]:
    """A passphrase as bytes (the seed's callers give a str)."""
    return passphrase.encode() if isinstance(passphrase, str) else passphrase


def _filters(
    filetype: Optional[list[str]],
    include: Optional[list[str]],
    exclude: Optional[list[str]],
    includedirectory: Optional[list[str]],
    excludedirectory: Optional[list[str]],
) -> Filters:
    """The seed's filter arguments as a section's :class:`Filters`."""
    return Filters(
        [t.lstrip(".").lower() for t in filetype or []],
        [compile_pattern(p) for p in include or []],
        [compile_pattern(p) for p in exclude or []],
        [compile_pattern(p) for p in includedirectory or []],
        [compile_pattern(p) for p in excludedirectory or []],
    )


class Manager:
    """Glue between the local folder, the relay and the encryption layer (one section).

    :param relay: relay scheme name, or a relay factory ``factory(address, **options)``.
    :param repository: the local folder; or the arguments dictionary of :func:`parse_section`
        (``Manager(*parse_section(config, section))``), other arguments overriding it.
    :param address: the relay host, a whole relay URL, or a :class:`RelayAddress`.
    :param directory: the repository folder on the relay.
    :param encryption: cipher name, ``True`` (the default cipher, aes-256-gcm) or ``False``
        (``"plain"``); an encrypting cipher needs ``passphrase=...``.
    :param clientname: this client's name (default: the host name).
    :param count: pullers: an update is deleted once this many clients acknowledged it.
    :param checksum: the checksum algorithm (``True``: auto), kept in :attr:`hash_algorithm`.
    :param tq_controller: a :class:`TimeQuotaController` (refresh and quota).
    :raises UsageError: an unknown cipher or mode, or a cipher without a passphrase.
    """

    def __init__(
        self,
        relay: Any,
        repository: Union[str, Path, Mapping[str, Any], None] = None,
        address: Union[str, RelayAddress, None] = None,
        directory: Optional[str] = None,
        encryption: Union[str, bool, None] = "plain",
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
        if isinstance(repository, Mapping):  # Manager(*parse_section(...))
            given = {k: val for k, val in locals().items() if k in _MANAGER_PARAMETERS}
            explicit = {k: val for k, val in given.items() if val != _MANAGER_PARAMETERS[k]}
            self.__init__(relay, **{**repository, **explicit, **relay_args})  # type: ignore[misc]
            return
        if repository is None:
            raise UsageError("Manager needs the local folder (repository=...)")
        self.path = Path(repository).expanduser()
        self.passphrase = _bytes(relay_args.pop("passphrase", None))
        self.state_dir = Path(relay_args.pop("state_dir", state_dir()))
        self.section = relay_args.pop("section_name", self.path.name or "default")
        self.client = clientname or get_client_name(self.section)
        self.encryption = _cipher(encryption, self.passphrase)
        self.hash_algorithm = "auto" if checksum is True else str(checksum)
        self.count = count or 1
        self.tq_controller = tq_controller or TimeQuotaController(refresh)
        self.address = self._address(relay, address, directory)
        self.relay_factory = relay if callable(relay) and not isinstance(relay, str) else None
        self.wait_on_error = frozenset(waitonerror or ())
        self.relay_args = relay_args
        self.filters = _filters(filetype, include, exclude, includedirectory, excludedirectory)
        self.timestamp = timestamp
        self.mode = original_mode(relay_args.pop("mode", None))

    @staticmethod
    def _address(
        relay: Any, address: Union[str, RelayAddress, None], directory: Optional[str]
    ) -> RelayAddress:
        if isinstance(address, RelayAddress):
            return address
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
        else:
            relay = open_relay(self.address, get_plugins().relays, **self.relay_args)
        relay.wait_on_error = self.wait_on_error
        return relay

    def filter(self, files: list[str]) -> list[str]:
        """The paths of ``files`` (relative, ``/``-separated) that the section's filters
        select: file types, include and exclude patterns on the name, folder patterns on the
        folders; hidden names never are."""
        return [f for f in files if self.filters.accepts_path(f)]

    def localFiles(self, path: Optional[str] = None) -> list[str]:
        """The local files the section syncs, relative to the local folder, sorted; with
        ``path``, only those under that relative folder."""
        files = scan(self.path, self.filters)
        prefix = path.strip("/") + "/" if path and path.strip("/") else ""
        return sorted(f for f in files if f.startswith(prefix))

    def remoteListing(self) -> list[str]:
        """The file paths the relay repository holds, sorted: decrypted from the manifests of
        the updates on the relay (a path deleted since may be listed until the update that
        holds it is collected). Never creates a repository.

        :raises RelayNotFoundError: no repository there.
        :raises IntegrityError: wrong passphrase or tampered data.
        """
        plugins = get_plugins()
        relay = self._relay()
        try:
            repo = open_repository(
                relay,
                plugins.ciphers,
                self.passphrase,
                create_cipher=self.encryption,
                create_checksum=resolve_checksum(self.hash_algorithm, plugins.checksums),
                create=False,
            )
            listing = Listing.read(relay.list_sizes())
            paths: set[str] = set()
            for cid, seqs in listing.updates.items():
                for seq in seqs:  # one manifest in memory at a time
                    paths.update(entry.path for entry in repo.read_manifest(cid, seq).files)
            return sorted(paths)
        finally:
            relay.close()

    def checksum(self, resource: str, return_mtime: bool = False) -> Any:
        """The checksum of local file ``resource`` (relative) with the section's algorithm
        (``auto`` resolved); with ``return_mtime``, ``(mtime in seconds, checksum)``;
        ``None`` for a missing file."""
        target = self.path / resource
        info = stat_file(target)
        if info is None:
            return None
        digest = hash_file(target, checksum_factory(self.hash_algorithm, get_plugins().checksums))
        return (info.mtime_ns / 1e9, digest) if return_mtime else digest

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
                create_checksum=resolve_checksum(self.hash_algorithm, plugins.checksums),
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


def _cipher(value: Union[str, bool, None], passphrase: Optional[bytes]) -> str:
    """The cipher name of ``encryption=value``.

    :raises UsageError: an unknown cipher, or an encrypting one without a passphrase.
    """
    if value is None or value is False:
        return "plain"
    name = DEFAULT_CIPHER if value is True else str(value).strip().lower()
    ciphers = get_plugins().ciphers
    if name not in ciphers:
        raise UsageError(
            f"unknown encryption {value!r}: expected True, False or one of "
            f"{', '.join(ciphers.names())}"
        )
    if name != "plain" and passphrase is None:
        raise UsageError(f"encryption {name!r} needs a passphrase (passphrase=...)")
    return name


#: The keyword parameters of :class:`Manager` and their defaults (those a caller changed
#: override the dictionary of :func:`parse_section`).
_MANAGER_PARAMETERS = {
    name: p.default
    for name, p in inspect.signature(Manager.__init__).parameters.items()
    if p.default is not inspect.Parameter.empty and name != "repository"
}


class IndexManager(Manager):
    """The original's index protocol manager: every escale repository bundles small files now,
    so it is the :class:`Manager` itself."""


# -- the original's escale.manager.migration and escale.manager.backup (docs/api.md) -------


def _toml_config(config: Union[str, Path, Config, None]) -> Config:
    """The configuration: given, read from a file, or found where ``escale`` finds it."""
    if isinstance(config, Config):
        return config
    return load_config(config, get_plugins())


@contextmanager
def _maintenance_locks(*relays: tuple[Relay, Any]) -> Iterator[Callable[[], None]]:
    """Hold the maintenance lock of each ``(relay, safe)`` whose ``safe`` is true; yield the
    function to call between objects: it refreshes the locks when due, so that a long copy
    never outlives them (another client could then take them and run an operation at once).

    :raises LockLostError: (from the yielded function) a lock expired and another client
        took it: the copy stops."""
    from .locks import RelayLock

    # the module (the package exports its function of the same name); read at each call
    ops = importlib.import_module(".ops.maintenance", __package__)

    locks = [
        RelayLock(relay, ops.MAINTENANCE_LOCK, timeout=ops.LOCK_TIMEOUT)
        for relay, safe in relays
        if safe
    ]
    with ExitStack() as stack:
        for lock in locks:
            stack.enter_context(lock)
        refreshed = time.monotonic()

        def keep_alive() -> None:
            nonlocal refreshed
            if time.monotonic() - refreshed > ops.REFRESH_EVERY:
                for lock in locks:
                    lock.refresh()
                refreshed = time.monotonic()

        yield keep_alive


def inter_relay_copy(
    src_relay: Relay,
    dest_relay: Relay,
    safe: Union[bool, tuple[bool, bool]] = True,
    overwrite: bool = False,
    files: Optional[list[str]] = None,
) -> list[str]:
    """Copy repository objects from ``src_relay`` to ``dest_relay``, each streamed and verified
    (read back, SHA-256 compared), data first and the header last; memory stays bounded
    whatever the objects' sizes, and the locks are refreshed between objects.

    :param safe: hold each relay's maintenance lock meanwhile (a pair: source, destination).
    :param overwrite: copy an object the destination already has with the same size (else it
        is compared by hash and skipped when equal, copied again when not).
    :param files: the object names to copy (default: every object of the format).
    :returns: the names that could not be copied (each logged with the reason).
    :raises LockLostError: a maintenance lock was lost meanwhile: the copy stopped.
    """
    from .errors import EscaleError
    from .ops.migrate import Copier, MigrateReport
    from .ops.objects import in_write_order

    safe_src, safe_dest = safe if isinstance(safe, tuple) else (safe, safe)
    failed: list[str] = []
    with _maintenance_locks((src_relay, safe_src), (dest_relay, safe_dest)) as keep_alive:
        sizes = src_relay.list_sizes("")
        there = {} if overwrite else dest_relay.list_sizes("")
        copier = Copier(src_relay, dest_relay, MigrateReport(dest_relay.address.display()))
        for name in in_write_order(files if files is not None else sizes):
            keep_alive()  # outside the try: a lost lock stops the copy, it is no object's fault
            try:
                copier.copy(name, _source_size(src_relay, sizes, name), there.get(name))
            except EscaleError as exc:
                log.error("%s: %s", name, exc)
                failed.append(name)
    return failed


def _source_size(relay: Relay, sizes: dict[str, int], name: str) -> int:
    """The size of object ``name`` of ``relay`` from its listing (never by reading it whole).

    :raises RelayNotFoundError: the relay has no such object."""
    from .errors import RelayNotFoundError

    if name not in sizes:
        sizes.update(relay.list_sizes(name.rpartition("/")[0]))
    if name not in sizes:
        raise RelayNotFoundError(f"relay object {name}: not found")
    return sizes[name]


def migrate_repository(
    repository: str,
    changes: Any,
    config: Union[str, Path, Config, None] = None,
    safe: Any = True,
    logger: Optional[logging.Logger] = None,
    alt_repo: Optional[str] = None,
) -> Config:
    """Move the repository of section ``repository`` to another relay (``escale migrate``):
    copied, verified, the section's ``relay`` switched in the configuration file, and the old
    relay left with a note for its clients.

    :param changes: the new relay: a mapping with ``relay`` (a URL) and optionally
        ``relay_options``, or a mapping of sections to such mappings (``alt_repo`` or
        ``repository`` is looked up in it). The client name and encryption cannot change.
    :param safe: ignored: the maintenance locks are always held.
    :returns: the configuration, read again.
    """
    from .ops.migrate import migrate

    loaded = _toml_config(config)
    key = alt_repo or repository
    # (a ConfigParser: its get() reads an option, so its sections are looked up by index)
    change = changes[key] if key in changes else changes  # noqa: SIM401
    if "relay" not in change:
        raise UsageError(f"changes for [{repository}]: give the new 'relay' address")
    say = (logger or log).info
    migrate(
        loaded,
        repository,
        get_plugins(),
        change["relay"],
        change.get("relay_options"),
        progress=say,
    )
    return load_config(loaded.file, get_plugins())


def migrate_repositories_and_update_config(
    changes: Any,
    config: Union[str, Path, Config, None] = None,
    safe: Any = True,
    logger: Optional[logging.Logger] = None,
) -> Config:
    """Migrate every section named in ``changes`` (a mapping of sections to ``{"relay": URL,
    "relay_options": {...}}``) and return the configuration, read again."""
    loaded = _toml_config(config)
    for section in changes:
        loaded = migrate_repository(section, changes, loaded, safe, logger)
    return loaded


def Backup(directory: Union[str, Path], **super_args: Any) -> Relay:
    """A local folder as a relay, to copy a repository into with :func:`inter_relay_copy`
    (the original's ``LocalMount`` subclass; locks are the relay's ``locks/`` objects)."""
    address = parse_relay_url(f"file://{Path(directory).expanduser().absolute()}")
    return open_relay(address, get_plugins().relays, **super_args)


def backup_manager(
    archive: Union[str, Path],
    repository: str,
    backup_or_restore: str = "backup",
    safe: Any = True,
    config: Union[str, Path, Config, None] = None,
    logger: Optional[logging.Logger] = None,
    force: bool = False,
) -> Any:
    """``escale backup`` (``backup_or_restore="backup"``) or ``escale restore`` of section
    ``repository`` with ``archive``; returns the :class:`~escale_core.ops.backup.BackupReport`.

    :param safe: ignored: the maintenance lock is always held.
    :param force: for a restore, replace what the relay folder holds.
    """
    from .ops.backup import backup, restore

    loaded = _toml_config(config)
    say = (logger or log).info
    if backup_or_restore == "backup":
        return backup(loaded, repository, get_plugins(), Path(archive), progress=say)
    if backup_or_restore == "restore":
        return restore(loaded, repository, get_plugins(), Path(archive), force=force, progress=say)
    raise UsageError(f"backup_or_restore: {backup_or_restore!r} is not 'backup' or 'restore'")


def backup_relay_repository(
    relay: Relay,
    archive: Union[str, Path],
    safe: bool = True,
    logger: Optional[logging.Logger] = None,
) -> Any:
    """Write the repository objects of an opened ``relay`` into the tar ``archive``."""
    from .ops.backup import write_archive

    with _maintenance_locks((relay, safe)) as keep_alive:
        return write_archive(relay, Path(archive), keep_alive)


def restore_relay_repository(
    relay: Relay,
    archive: Union[str, Path],
    safe: bool = True,
    logger: Optional[logging.Logger] = None,
    force: bool = False,
) -> Any:
    """Put the objects of the tar ``archive`` back on an opened ``relay`` (checked first, the
    header last; a non-empty relay folder needs ``force``)."""
    from .ops.backup import restore_archive

    with _maintenance_locks((relay, safe)) as keep_alive:
        return restore_archive(relay, Path(archive), force, keep_alive)


__all__ += [
    "Backup",
    "backup_manager",
    "backup_relay_repository",
    "inter_relay_copy",
    "migrate_repositories_and_update_config",
    "migrate_repository",
    "restore_relay_repository",
]
