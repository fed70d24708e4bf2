"""Opening a configured section: relay, repository, local state, and a per-section lock."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Optional

from .checksum import resolve_checksum
from .config import Config, SectionConfig
from .engine import Engine, RoundReport, SyncOptions, retired_message
from .errors import (
    ClientRetiredError,
    ConfigError,
    EscaleError,
    LocalFolderError,
    PassphraseChangedError,
    RelayError,
    RelayNotFoundError,
    RepositoryMovedError,
)
from .history import LocalState
from .keycache import KeyCache
from .local import Filters, describe_os_error
from .manifest import Retirement
from .plugins import Plugins
from .relay import ReadOnlyRelay, Relay, open_relay
from .repository import HEADER, Repository, open_repository
from .scanner import BackgroundScan
from .state import make_state_folder, state_dir, state_file, state_folder_error


def filters_for(section: SectionConfig) -> Filters:
    """The file filters of a section."""
    return Filters(
        section.file_types,
        section.include,
        section.exclude,
        section.include_directories,
        section.exclude_directories,
    )


def options_for(
    section: SectionConfig, force: bool = False, progress: Optional[Callable[[int], None]] = None
) -> SyncOptions:
    """The engine options of a section."""
    return SyncOptions(
        root=section.path,
        client=section.client,
        mode=section.mode,
        filters=filters_for(section),
        pullers=section.pullers,
        quota=section.quota,
        page_size=section.max_page_size,
        propagate_deletions=section.propagate_deletions,
        restore_mtime=section.timestamp is not False,
        force=force,
        checksum_cache=section.checksum_cache,
        progress=progress,
        versions=section.versions_policy,
    )


def relay_options(section: SectionConfig) -> dict[str, Any]:
    """Options for the relay: ``relay_options`` plus the credentials of the section."""
    options = dict(section.relay_options)
    user, password = section.username, section.password
    if section.password_file is not None:
        line = section.password_file.read_text(encoding="utf-8").splitlines()[0].strip()
        if ":" in line and user is None:  # the original's "user:password" line
            user, _, password = line.partition(":")
        else:
            password = line
    if user:
        options.setdefault("username", user)
    if password:
        options.setdefault("password", password)
    elif (
        (user or section.address.username)
        and not section.address.password
        and not _KEY_OPTIONS & set(options)
        and sys.stdin.isatty()
    ):
        options["password"] = _ask_password(section, user or section.address.username or "")
    return options


#: relay_options that authenticate without asking (keys, tokens, or a password given there).
_KEY_OPTIONS = {
    "client_keys",
    "key_filename",
    "pkey",
    "key",
    "secret",
    "token",
    "agent_path",
    "password",
    "passwd",
}
_asked: dict[tuple[str, str], str] = {}


def _ask_password(section: SectionConfig, user: str) -> str:
    """Ask on the terminal, without echo; remembered for the process, never logged."""
    import getpass

    where = (user, section.address.display())
    if where not in _asked:
        _asked[where] = getpass.getpass(
            f"[{section.name}] password for {user} on {section.address.display()}: "
        )
    return _asked[where]


def open_section_relay(section: SectionConfig, plugins: Plugins) -> Relay:
    """Connect to the relay of ``section``."""
    options = (
        relay_options(section)
        if section.address.mount is None
        and section.address.scheme not in ("file", "local", "memory")
        else dict(section.relay_options)
    )
    try:
        relay = open_relay(section.address, plugins.relays, **options)
    except ConfigError as exc:  # a relay's word on its options: say which file and section
        raise exc.located(file=section.file, section=section.name) from None
    except RelayError as exc:  # say which section, as a round's errors do
        shown = section.address.display()
        place = f"[{section.name}] relay" + ("" if shown in str(exc) else f" {shown}")
        raise type(exc)(f"{place}: {exc}") from exc
    relay.wait_on_error = frozenset(section.wait_on_error)
    return relay


def open_section_repository(
    section: SectionConfig,
    relay: Relay,
    plugins: Plugins,
    kept: Optional[dict[str, Any]] = None,
    create: bool = True,
    kept_key_check: Optional[str] = None,
    key_cache: Optional[KeyCache] = None,
) -> Repository:
    """Open (or create) the repository of ``section`` on ``relay``; checks the passphrase.

    :param kept: the header the section's client joined with (it must not change, but for a
        new passphrase: see :func:`~escale_core.repository.open_repository`).
    :param create: ``False``: an empty relay folder is refused instead of getting a new
        repository.
    :param kept_key_check: the fingerprint of the key the client joined with.
    :param key_cache: where the unwrapped key is kept (:mod:`escale_core.keycache`)."""
    passphrase = None if section.encryption == "plain" else section.read_passphrase()
    place = f"[{section.name}] relay {section.address.display()}"
    try:
        return open_repository(
            relay,
            plugins.ciphers,
            passphrase,
            create_cipher=section.encryption,
            create_checksum=resolve_checksum(section.checksum, plugins.checksums),
            kept=kept,
            create=create,
            kept_key_check=kept_key_check,
            key_cache=key_cache,
        )
    except PassphraseChangedError as exc:
        raise PassphraseChangedError(
            f"{place}: {exc}: put the new passphrase in {passphrase_place(section)} (if "
            f"nobody changed it, the relay's {HEADER} was tampered with); nothing was written"
        ) from None
    except EscaleError as exc:
        raise type(exc)(f"{place}: {exc}") from exc


def section_key_cache(section: SectionConfig, folder: Path) -> Optional[KeyCache]:
    """The key cache of ``section`` beside its local state in ``folder``: only where the
    passphrase is in a private file (see :mod:`escale_core.keycache`)."""
    if section.encryption == "plain":
        return None
    return KeyCache.beside(state_file(section.name, folder), section.passphrase_file)


def passphrase_place(section: SectionConfig) -> str:
    """Where the section's passphrase is: its passphrase file, or its ``passphrase`` key."""
    if section.passphrase_file is not None:
        return str(section.passphrase_file)
    return f"the passphrase key of [{section.name}]"


def remember_header(state: LocalState, repo: Repository) -> None:
    """Keep the header this client syncs with, and the fingerprint of its key, in the local
    state: set when the client joins; the fingerprint is added for a client that joined before
    fingerprints were kept; the header is replaced after 'escale key passwd' re-wrapped it."""
    if state.get_meta("header") != repo.header:
        state.set_meta("header", repo.header)
    if state.get_meta("key check") != repo.key_check:
        state.set_meta("key check", repo.key_check)


def moved_message(section: SectionConfig, to: str, when: float) -> str:
    """The line for a round on a repository that ``escale migrate`` moved to ``to``."""
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))
    file = section.file  # the configuration file the section comes from
    where = os.path.abspath(file) if file else "the configuration file"
    return (
        f"[{section.name}] relay {section.address.display()}: this repository moved to {to} "
        f'on {date} (escale migrate): set relay = "{to}" in {where}'
    )


@dataclass
class SectionLock:
    """An exclusive lock on a section's local state (one escale process per section)."""

    handle: IO[str]


@contextmanager
def section_lock(section: str, directory: Path) -> Iterator[SectionLock]:
    """Hold the lock of ``section`` or fail naming the process that holds it."""
    make_state_folder(directory)
    path = state_file(section, directory).with_suffix(".lock")
    try:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise state_folder_error(directory, exc) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise EscaleError(
                f"[{section}] is being synced by process {holder}; wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield SectionLock(handle)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def section_state_dir(config: Config) -> Path:
    """The state folder of a configuration."""
    return state_dir(config.globals.state_dir)


def _dry_relay(section: SectionConfig, relay: Relay) -> Relay:
    """The relay, read-only; a relay without a repository yet has nothing to compare with."""
    if not relay.exists(HEADER):
        relay.close()
        raise RelayNotFoundError(
            f"[{section.name}] relay {section.address.display()}: no repository there yet; a "
            "dry run writes nothing, and the first real sync creates it"
        )
    return ReadOnlyRelay(relay)


def _dry_state(section: str, folder: Path, scratch: Path) -> Path:
    """The state folder a round works in: ``folder``, or for a dry run a copy of its
    database in ``scratch`` (SQLite's backup: consistent even while another process reads)."""
    source = state_file(section, folder)
    if source.exists():
        with (
            closing(sqlite3.connect(source)) as db,
            closing(sqlite3.connect(state_file(section, scratch))) as copy,
        ):
            db.backup(copy)
    return scratch


def sync_section(
    config: Config,
    section: SectionConfig,
    plugins: Plugins,
    force: bool = False,
    directory: Optional[Path] = None,
    progress: Optional[Callable[[int], None]] = None,
    dry_run: bool = False,
    phase: Optional[Callable[[str], None]] = None,
) -> RoundReport:
    """Run one round for ``section``, under its lock (:func:`section_lock`).

    :param progress: called with a number of bytes as data moves.
    :param dry_run: decide everything, change nothing: the relay is only read, and the round
        works on a copy of the local state, thrown away at the end.
    :param phase: called as the round moves on (``"scanning"``, ``"pushing"``...)."""
    folder = directory or section_state_dir(config)
    with section_lock(section.name, folder):
        options = options_for(section, force, progress)
        options.dry_run, options.phase = dry_run, phase
        return run_round(section, plugins, options, folder)


def run_round(
    section: SectionConfig, plugins: Plugins, options: SyncOptions, folder: Path
) -> RoundReport:
    """Run one round for ``section`` with ``options``, its local state in ``folder``; the
    caller holds the section's lock (:func:`sync_section`; the operations, which hold it for
    longer: :mod:`escale_core.ops.maintenance`)."""
    with tempfile.TemporaryDirectory() as scratch:
        pushes = options.mode != "download"
        prescan = BackgroundScan(options.root, options.filters) if pushes else None
        try:
            relay = open_section_relay(section, plugins)
            try:
                if options.dry_run:
                    relay = _dry_relay(section, relay)
                where = (
                    _dry_state(section.name, folder, Path(scratch)) if options.dry_run else folder
                )
                return _round_on(section, plugins, options, folder, relay, where, prescan)
            finally:
                relay.close()
        finally:
            if prescan is not None:
                prescan.close()  # a round that failed before its push: reap its helper


def _round_on(
    section: SectionConfig,
    plugins: Plugins,
    options: SyncOptions,
    folder: Path,
    relay: Relay,
    where: Path,
    prescan: Optional[BackgroundScan],
) -> RoundReport:
    """The round on an open relay, with the local state in ``where`` (``folder``, or a dry
    run's copy of it); local errors named as such."""
    state = LocalState(section.name, where)
    try:
        kept = state.get_meta("header")
        check = state.get_meta("key check")
        cache = None if options.dry_run else section_key_cache(section, folder)
        repo = open_section_repository(section, relay, plugins, kept, True, check, cache)
        remember_header(state, repo)  # joined now: this repository for good
        engine = Engine(repo, state, options, plugins.checksums, prescan)
        return _run_engine(engine, section, folder)
    except OSError as exc:  # the relay edge maps its own: this one is local
        raise LocalFolderError(f"[{section.name}] {describe_os_error(exc, options.root)}") from None
    finally:
        state.close()


def _run_engine(engine: Engine, section: SectionConfig, folder: Path) -> RoundReport:
    """The engine's round, its errors told with the section's files and relay."""
    try:
        return engine.run_round()
    except RepositoryMovedError as exc:  # say which file to change
        message = moved_message(section, exc.destination, exc.moved_at)
        raise RepositoryMovedError(message, exc.destination, exc.moved_at) from None
    except ClientRetiredError as exc:  # say which file "its local state" is
        if not isinstance(exc.record, Retirement):
            raise
        hint = f"its local state {state_file(section.name, folder)}"
        message = retired_message(exc.record, hint)
        raise ClientRetiredError(f"[{section.name}] {message}", exc.record) from None
    except RelayError as exc:  # name the section and the relay, as opening does
        place = f"[{section.name}] relay {section.address.display()}"
        raise type(exc)(f"{place}: {exc}") from exc
