"""``escale migrate SECTION DEST_URL``: move a repository to another relay (DESIGN §10).

The objects are copied as they are (still sealed: the key is only needed to check the
passphrase and to seal the ``moved`` note), one at a time and streaming, each read back from
the destination and compared with the source by SHA-256. Data first, then manifests, then
client states, the header last: a client pointed at a half-copied destination sees no
repository. An interrupted migration is run again: objects already at the destination with
the same size and hash are skipped.

Then the source gets the sealed ``moved`` note (where the repository went, and when), a last
pass copies what the source's other clients wrote meanwhile, and the section's ``relay`` is
switched in the configuration file (comments kept). A client of the source that still syncs
there is stopped by the note with one line saying where to point its section. The source is
otherwise left untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote

import tomlkit
from tomlkit.exceptions import TOMLKitError

from ..address import RelayAddress, mask_passwords, parse_relay_url
from ..config import Config, SectionConfig
from ..config.editing import update_section
from ..errors import (
    EscaleError,
    FileWriteError,
    IntegrityError,
    NotARepositoryError,
    RelayNotFoundError,
    UsageError,
)
from ..locks import LockBusyError, RelayLock
from ..plugins import Plugins
from ..relay import Relay
from ..repository import HEADER, MAX_HEADER, MOVED, Repository, bounded
from ..session import open_section_relay
from ..state import state_file
from .maintenance import LOCK_TIMEOUT, MAINTENANCE_LOCK, REFRESH_EVERY, Maintenance, maintenance
from .objects import in_write_order, kind_of, sha256_of


@dataclass
class MigrateReport:
    """What a migration did."""

    #: the destination, without password
    destination: str
    copied: int = 0
    #: already at the destination with the same size and hash (an earlier, interrupted run)
    skipped: int = 0
    #: at the destination with other bytes (a damaged partial copy): copied again
    replaced: int = 0
    #: at the destination but no longer at the source (collected meanwhile): deleted
    deleted: int = 0
    bytes: int = 0
    #: the configuration keys set
    settings: dict[str, Any] = field(default_factory=dict)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as relay options; a VALUE is read as TOML when it is one
    (``true``, ``22``, ``["a", "b"]``), else kept as a string.

    :raises UsageError: a pair without ``=``.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option {pair!r}: write KEY=VALUE (e.g. known_hosts=none)")
        try:
            options[key.strip()] = tomlkit.parse(f"v = {value}").unwrap()["v"]
        except TOMLKitError:
            options[key.strip()] = value
    return options


def destination_section(
    section: SectionConfig, url: str, options: Optional[dict[str, Any]], plugins: Plugins
) -> SectionConfig:
    """The section as it will be once switched to ``url``: same credentials settings, and
    ``options`` as ``relay_options`` (default: the section's own when the scheme is the same,
    none otherwise: options belong to a backend).

    :raises UsageError: not a relay address, an unknown scheme, or the section's own relay.
    """
    relays = plugins.relays
    multipath = frozenset(e.name for e in relays if e.options.get("multipath"))
    try:
        address = parse_relay_url(url, multipath)
    except ValueError as exc:
        raise UsageError(f"DEST_URL: {mask_passwords(str(exc))}") from None
    scheme = "file" if address.mount is not None else address.scheme
    if scheme not in relays or relays.get(scheme).options.get("for_tests"):
        raise UsageError(
            f"DEST_URL {address.display()!r}: no installed relay serves '{address.scheme}://'"
        )
    if _same_place(address, section.address):
        raise UsageError(
            f"[{section.name}] relay {address.display()} is already the section's relay"
        )
    if options is None:
        options = dict(section.relay_options) if scheme == section.address.scheme else {}
    return dataclasses.replace(section, address=address, relay=url, relay_options=options)


def _same_place(a: RelayAddress, b: RelayAddress) -> bool:
    return dataclasses.replace(a, password=None, username=None) == dataclasses.replace(
        b, password=None, username=None
    )


def public_url(address: RelayAddress) -> str:
    """The address as a URL without any password (what the ``moved`` note says)."""
    return dataclasses.replace(address, password=None).display()


def migrate(
    config: Config,
    section_name: str,
    plugins: Plugins,
    dest_url: str,
    options: Optional[dict[str, Any]] = None,
    *,
    dest_relay: Optional[Relay] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> MigrateReport:
    """Copy the repository of ``section_name`` to ``dest_url``, verify it, leave the ``moved``
    note in the source and switch the section's ``relay`` in the configuration file.

    :param options: the destination's ``relay_options`` (see :func:`destination_section`).
    :param dest_relay: an opened destination relay (default: opened as the switched section
        will open it); closed here.
    :param progress: called with one line per phase.
    :raises UsageError: no configuration file, a bad address, a running daemon.
    :raises NotARepositoryError: the destination holds something else than this repository.
    :raises IntegrityError: a copy differs from the source after writing it.
    """
    with _password_masked(dest_url):
        return _migrate(config, section_name, plugins, dest_url, options, dest_relay, progress)


@contextmanager
def _password_masked(url: str) -> Iterator[None]:
    """Errors raised inside never show the password of ``url`` (a relay's message may repeat
    the address it was given): it is masked as :meth:`RelayAddress.display` masks it."""
    try:
        yield
    except EscaleError as exc:
        text = mask_passwords(str(exc))
        password = _password_of(url)
        if password and len(password) >= 6:  # a shorter one would mask words of the message
            text = text.replace(password, "***").replace(quote(password, safe=""), "***")
        if text != str(exc):
            exc.args = (text,)
        raise


def _password_of(url: str) -> Optional[str]:
    try:
        return parse_relay_url(url).password
    except ValueError:
        return None


def _migrate(
    config: Config,
    section_name: str,
    plugins: Plugins,
    dest_url: str,
    options: Optional[dict[str, Any]],
    dest_relay: Optional[Relay],
    progress: Optional[Callable[[str], None]],
) -> MigrateReport:
    section = config.section(section_name)
    if config.file is None:
        raise UsageError("escale migrate edits the configuration file: give it with -c FILE")
    target = destination_section(section, dest_url, options, plugins)
    say = progress or (lambda line: None)
    with maintenance(config, section, plugins, f"migrate {section.name}") as m:
        repo = m.open_kept_repository()
        report = MigrateReport(public_url(target.address))
        _refuse_if_moved_elsewhere(m, repo, report.destination)
        dest = dest_relay or open_section_relay(target, plugins)
        try:
            held = state_file(section.name, m.state_folder).with_suffix(".migrate-lock")
            with _destination_lock(dest, report.destination, held) as dest_lock:

                def keep_alive() -> None:
                    m.keep_alive()
                    dest_lock()

                copier = Copier(repo.relay, dest, report, keep_alive)
                copier.check_destination(repo)
                say(f"{m.where()}: copying to {report.destination}")
                copier.copy_all(final=False)
                # other clients stop syncing with the source from their next round on; a
                # last pass copies what their rounds in flight wrote meanwhile
                repo.write_moved(report.destination, time.time())
                copier.copy_all(final=True)
        finally:
            dest.close()
    report.settings = {"relay": dest_url}
    if options is not None or target.relay_options != section.relay_options:
        report.settings["relay_options"] = dict(target.relay_options) or None
    update_section(config.file, section.name, report.settings)
    return report


def _refuse_if_moved_elsewhere(m: Maintenance, repo: Repository, destination: str) -> None:
    """A source that already moved is stale, unless to this destination (a resumed run)."""
    moved = repo.read_moved()
    if moved is not None and moved[0] != destination:
        raise UsageError(
            f"{m.where()}: this repository already moved to {moved[0]} (escale migrate): "
            f'migrate from there, or set relay = "{moved[0]}" in {m.config.file}'
        )


@contextmanager
def _destination_lock(relay: Relay, where: str, held: Path) -> Iterator[Callable[[], None]]:
    """Hold the destination's maintenance lock (no two migrations into one folder at once);
    yield the function that refreshes it when due.

    :param held: the file keeping the lock's token while it is held: a lock left by this
        client's own killed migration is taken back at once (the caller holds the section
        lock, so that migration is gone), as :func:`.maintenance.maintenance` does.
    """
    if held.exists():
        RelayLock(relay, MAINTENANCE_LOCK).take_back(held.read_text(encoding="utf-8").strip())
    lock = RelayLock(relay, MAINTENANCE_LOCK, timeout=LOCK_TIMEOUT, wait=30.0)
    try:
        lock.acquire()
    except LockBusyError as exc:
        raise LockBusyError(
            f"relay {where}: another client runs an operation there ({exc}); "
            "run 'escale migrate' again later"
        ) from None
    try:
        held.write_text(lock.token, encoding="utf-8")
    except OSError as exc:
        lock.release()
        raise FileWriteError(held, exc) from None
    refreshed = time.monotonic()

    def keep_alive() -> None:
        nonlocal refreshed
        if time.monotonic() - refreshed > REFRESH_EVERY:
            lock.refresh()
            refreshed = time.monotonic()

    try:
        yield keep_alive
    finally:
        with contextlib.suppress(EscaleError):
            lock.release()  # it expires by itself
        held.unlink(missing_ok=True)


class Copier:
    """Copies a repository object by object, verifying each copy."""

    def __init__(
        self,
        source: Relay,
        dest: Relay,
        report: MigrateReport,
        keep_alive: Callable[[], None] = lambda: None,
    ) -> None:
        """
        :param report: counts what is done (its ``destination`` names the destination).
        :param keep_alive: called between objects (refreshes the caller's locks).
        """
        self.source, self.dest, self.report, self.keep_alive = source, dest, report, keep_alive
        #: immutable objects verified at the destination in this run, with their size
        self.verified: dict[str, int] = {}

    def check_destination(self, repo: Repository) -> None:
        """Refuse a destination that is neither empty nor a partial copy of ``repo``."""
        names = self._dest_names()
        if not names:
            return
        where = f"relay {self.report.destination}"
        if HEADER in names:
            header = _dest_header(self.dest, where)
            if header.get("id") != repo.id:
                raise NotARepositoryError(
                    f"{where} holds another repository (id {header.get('id')}, this one is "
                    f"{repo.id}): refusing to copy over it; give an empty folder"
                )
            return
        unknown = [name for name in names if kind_of(name) is None]
        if unknown:
            raise NotARepositoryError(
                f"{where} is not empty and holds other files (e.g. {unknown[0]!r}): refusing "
                "to copy there; give an empty folder"
            )
        states = [name for name in names if kind_of(name) == "client"]
        if states:  # authenticated under this repository's key and id, or another's
            try:
                _open_client_state(repo, self.dest, states[0])
            except IntegrityError:
                raise NotARepositoryError(
                    f"{where} holds objects of another repository ({states[0]} does not open "
                    "with this repository's key): refusing to copy over it; give an empty folder"
                ) from None

    def _dest_names(self) -> dict[str, int]:
        return {
            name: size
            for name, size in self.dest.list_sizes("").items()
            if not name.startswith("locks/")
        }

    def copy_all(self, final: bool) -> None:
        """One pass over the source (the header only in the ``final`` one)."""
        sources = self.source.list_sizes("")
        there = self._dest_names()
        for name in in_write_order(sources):
            if name == MOVED or (name == HEADER and not final):
                continue
            self.keep_alive()
            self.copy(name, sources[name], there.get(name))
        if final:
            self._delete_stale(sources, there)

    def _delete_stale(self, sources: dict[str, int], there: dict[str, int]) -> None:
        """Objects collected at the source since they were copied, and a ``moved`` note of an
        earlier move away from the destination (a repository moved back)."""
        for name in there:
            stale = name not in sources or name == MOVED
            if kind_of(name) is not None and name != HEADER and stale:
                self.dest.delete(name)
                self.report.deleted += 1

    def copy(self, name: str, size: int, dest_size: Optional[int]) -> None:
        """Copy object ``name`` of ``size`` bytes unless the destination has the same bytes
        (``dest_size``: its size there, if it is there); verified.

        :raises IntegrityError: the copy read back differs from the source.
        """
        immutable = kind_of(name) in ("data", "manifest")
        if immutable and self.verified.get(name) == size:
            return  # verified in the first pass of this run: such an object never changes
        try:
            if dest_size == size and self._same(name):
                if name not in self.verified:  # (a re-check of the last pass counts nothing)
                    self.report.skipped += 1
            else:
                if dest_size is not None:
                    self.report.replaced += 1
                self._write_verified(name)
        except RelayNotFoundError as exc:
            if self._source_has(name):
                raise
            del exc  # collected at the source meanwhile: nothing to copy
            return
        self.verified[name] = size

    def _source_has(self, name: str) -> bool:
        parent = name.rpartition("/")[0]
        return name in self.source.list(parent)

    def _same(self, name: str) -> bool:
        return sha256_of(self.source.read_stream(name)) == sha256_of(self.dest.read_stream(name))

    def _write_verified(self, name: str) -> None:
        """Copy ``name``, streaming, then read it back and compare the hashes."""
        digest = hashlib.sha256()
        count = 0

        def tee() -> Iterator[bytes]:
            nonlocal count
            for chunk in self.source.read_stream(name):
                digest.update(chunk)
                count += len(chunk)
                yield chunk

        self.dest.write_stream(name, tee())
        self.dest.sync()
        if sha256_of(self.dest.read_stream(name)) != digest.hexdigest():
            raise IntegrityError(
                f"relay {self.report.destination}: relay object {name}: the copy read back "
                "differs from the source (a faulty destination): the configuration was not "
                "changed; run 'escale migrate' again"
            )
        self.report.copied += 1
        self.report.bytes += count


def _dest_header(relay: Relay, where: str) -> dict[str, Any]:
    """The destination's header, read with the header's bound."""
    try:
        blob = b"".join(bounded(relay.read_stream(HEADER), MAX_HEADER, "header"))
        header = json.loads(blob)
        if not isinstance(header, dict) or header.get("format") != "escale-repository":
            raise ValueError("not an escale repository header")
    except (ValueError, IntegrityError) as exc:
        raise NotARepositoryError(
            f"{where}: relay object {HEADER}: {exc}: refusing to copy over it; give an empty folder"
        ) from None
    return header


def _open_client_state(repo: Repository, relay: Relay, name: str) -> None:
    """Open client state ``name`` of ``relay`` as an object of ``repo``.

    :raises IntegrityError: it is not one.
    """
    other = dataclasses.replace(repo, relay=relay)
    other.read_client(name.rpartition("/")[2])


__all__ = [
    "MigrateReport",
    "destination_section",
    "migrate",
    "parse_options",
    "public_url",
]
