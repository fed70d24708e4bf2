"""``escale backup`` / ``escale restore``: the relay objects of a repository in a tar archive.

The objects go into the archive as they are on the relay (still sealed: the archive reveals
nothing the relay does not), header first, streaming with bounded memory. ``locks/``,
temporary objects and names the format does not define are left out.

A restore never trusts the archive: a first pass reads every member's header and refuses the
archive (before anything is written) for a member that is not a regular file, whose name is not
an object name of the format (``..``, absolute paths, links and devices included), that appears
twice or is larger than its kind's bound, or without a valid header. The second pass streams
the objects to the relay, the header last; with ``--force``, a relay folder that holds a
repository first loses its header (so no client syncs with a half-restored one), and the
objects the archive does not hold are deleted at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Optional, Union

from ..config import Config
from ..errors import EscaleError, FileWriteError, IntegrityError, RelayNotFoundError, UsageError
from ..plugins import Plugins
from ..relay import Relay
from ..repository import HEADER, _parse_header, bounded, opens_with, same_repository_rewrapped
from .maintenance import Maintenance, maintenance
from .objects import in_write_order, kind_of, max_size

#: Bytes read from the archive per relay write chunk.
BLOCK = 1 << 20
#: Kinds read whole before writing them into the archive: they may change while a backup runs
#: (a client state is rewritten by its client), so their size is what was read.
_MUTABLE = ("header", "client", "retired", "moved")

Archive = Union[Path, str]


@dataclass
class BackupReport:
    """What a backup or a restore did."""

    objects: int = 0
    bytes: int = 0
    #: objects listed but collected before they were read (backup), or deleted (restore)
    gone: int = 0
    #: restore: why the header written is not the archive's (``None``: it is)
    header_note: Optional[str] = None


class _ChunkReader(io.RawIOBase):
    """A file-like view of a stream of chunks (for :meth:`tarfile.TarFile.addfile`)."""

    def __init__(self, chunks: Iterator[bytes], first: bytes) -> None:
        self.chunks, self.pending, self.offset = chunks, memoryview(first), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` whole unless the stream ends (tarfile takes a short read for the
        end of the data)."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if self.offset == len(self.pending):
                chunk = next(self.chunks, b"")
                if not chunk:
                    break
                self.pending, self.offset = memoryview(chunk), 0
            count = min(len(view) - filled, len(self.pending) - self.offset)
            view[filled : filled + count] = self.pending[self.offset : self.offset + count]
            self.offset += count
            filled += count
        return filled


@contextmanager
def _output(archive: Archive, force: bool = True) -> Iterator[IO[bytes]]:
    """The archive file to write (``-``: standard output), written whole or not at all.

    :param force: replace an existing file (else one that appeared meanwhile is kept)."""
    if str(archive) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(archive)
    temp = path.with_name(f".{path.name}.partial")
    # created afresh, 0600 (a plain repository's archive holds files in clear), never
    # through a link planted at its name
    temp.unlink(missing_ok=True)
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if force:
            temp.replace(path)
        else:
            _link_new(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _link_new(temp: Path, path: Path) -> None:
    """Name the complete ``temp`` ``path`` unless ``path`` exists (a hard link never replaces
    a file; a rename would); then ``temp`` is removed by the caller."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise UsageError(_EXISTS.format(path=path)) from None
    except OSError:  # no hard links on this file system: check, then rename
        if path.exists():
            raise UsageError(_EXISTS.format(path=path)) from None
        temp.replace(path)
    temp.unlink(missing_ok=True)


_EXISTS = "archive {path} exists: not overwritten (add --force to replace it)"


def backup(
    config: Config,
    section_name: str,
    plugins: Plugins,
    archive: Archive,
    *,
    force: bool = False,
    progress: Optional[Callable[[str], None]] = None,
) -> BackupReport:
    """Write the relay objects of ``section_name`` into the tar ``archive`` (``-``: stdout).

    :param force: replace an existing archive file (else refused).
    :raises UsageError: ``archive`` exists (without ``force``).
    :raises EscaleError: no repository there, a relay error, a busy maintenance lock.
    """
    section = config.section(section_name)
    if str(archive) != "-" and not force and os.path.lexists(archive):
        raise UsageError(_EXISTS.format(path=archive))
    with maintenance(config, section, plugins, f"backup {section.name}") as m:
        m.open_repository()  # a repository, and the right passphrase
        report = write_archive(m.relay, archive, m.keep_alive, force=force)
    if progress:
        progress(f"{m.where()}: {report.objects} objects ({report.bytes} bytes) in {archive}")
    return report


def write_archive(
    relay: Relay,
    archive: Archive,
    keep_alive: Callable[[], None] = lambda: None,
    *,
    force: bool = True,
) -> BackupReport:
    """Write the repository objects of ``relay`` into the tar ``archive``, the header first.

    :param keep_alive: called between objects (refreshes the caller's lock).
    :param force: replace an existing archive file (else refused).
    :raises RelayNotFoundError: the relay folder holds no repository.
    """
    sizes = relay.list_sizes("")
    names = in_write_order(sizes)
    if not names or names[-1] != HEADER:
        raise RelayNotFoundError(f"no repository there (no {HEADER}): nothing to back up")
    names.insert(0, names.pop())  # the header first: a restore reads it before the rest
    report = BackupReport()
    try:
        with _output(archive, force) as out, tarfile.open(fileobj=out, mode="w|") as tar:
            for name in names:
                keep_alive()
                _add(tar, relay, name, sizes[name], report)
    except OSError as exc:
        raise FileWriteError(archive, exc) from None
    return report


def _add(tar: tarfile.TarFile, relay: Relay, name: str, size: int, report: BackupReport) -> None:
    """Add object ``name`` to ``tar``, streaming (an object collected meanwhile is left out)."""
    chunks = iter(relay.read_stream(name))
    try:
        if kind_of(name) in _MUTABLE:
            data = b"".join(bounded(chunks, max_size(name), f"relay object {name}"))
            first, size, chunks = data, len(data), iter(())
        else:
            first = next(chunks, b"")
    except RelayNotFoundError:
        report.gone += 1  # collected by a client's round since the listing
        return
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(time.time()), 0o600
    tar.addfile(info, _ChunkReader(chunks, first))
    report.objects += 1
    report.bytes += size


def check_archive(path: Path) -> tuple[dict[str, int], bytes]:
    """Every member of the archive at ``path``, checked: name → size, and the header's bytes.

    :raises IntegrityError: a member that is not an object of the format (see the module).
    """
    members: dict[str, int] = {}
    header: Optional[bytes] = None
    with _input(path) as tar:
        for member in tar:
            name = _checked(member, members, path)
            members[name] = member.size
            if name == HEADER:
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                header = source.read(max_size(HEADER))
                try:
                    _parse_header(header)
                except IntegrityError as exc:
                    raise IntegrityError(f"archive {path}: {exc}") from None
    if header is None:
        raise IntegrityError(f"archive {path}: no {HEADER} in it: not an escale backup")
    return members, header


def _checked(member: tarfile.TarInfo, seen: dict[str, int], path: Path) -> str:
    name = member.name
    what = f"archive {path}: member {name!r}"
    if not member.isreg():
        raise IntegrityError(f"{what} is not a regular file (a link or a device): refused")
    if kind_of(name) is None:
        raise IntegrityError(f"{what} is not a relay object of the format: refused")
    if name in seen:
        raise IntegrityError(f"{what} appears twice: refused")
    if member.size > max_size(name):
        raise IntegrityError(
            f"{what} has {member.size} bytes, more than such an object may have: refused"
        )
    return name


@contextmanager
def _input(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, mode="r|*") as tar:
            yield tar
    except tarfile.TarError as exc:
        raise IntegrityError(f"archive {path}: not a readable tar archive ({exc})") from None
    except OSError as exc:
        raise EscaleError(f"archive {path}: {exc.strerror or exc}") from None


def restore(
    config: Config,
    section_name: str,
    plugins: Plugins,
    archive: Path,
    *,
    force: bool = False,
    progress: Optional[Callable[[str], None]] = None,
) -> BackupReport:
    """Put the relay objects of ``archive`` back on the relay of ``section_name``.

    :param force: replace what the relay folder holds (else a non-empty one is refused).
    :raises UsageError: the relay folder is not empty and ``force`` is not given.
    :raises IntegrityError: the archive holds something else than relay objects.
    """
    section = config.section(section_name)
    with maintenance(config, section, plugins, f"restore {section.name}") as m:
        again = f"escale restore {section.name} {archive} --force"
        chosen = _header_this_passphrase_opens(m)
        kept = m.kept_header()
        report = restore_archive(
            m.relay,
            archive,
            force,
            m.keep_alive,
            m.where(),
            again,
            choose_header=chosen,
            expected_id=kept.get("id") if kept else None,
        )
    if progress:
        if report.header_note:
            progress(f"{m.where()}: {report.header_note}")
        progress(f"{m.where()}: restored {report.objects} objects ({report.bytes} bytes)")
    return report


def _header_this_passphrase_opens(m: Maintenance) -> Callable[[bytes, BackupReport], bytes]:
    """How a restore picks the header it writes: the archive's, unless the passphrase changed
    since the backup (``escale key passwd``): then the header this client keeps, the same
    repository and key wrapped with the passphrase in force, so that no client is locked out
    by a restore (DESIGN §2.12 still holds: only a re-wrap of the same key is taken)."""
    kept = m.kept_header()
    passphrase = None if m.section.encryption == "plain" else m.section.read_passphrase()

    def choose(blob: bytes, report: BackupReport) -> bytes:
        archived = _parse_header(blob)
        if kept is None or not same_repository_rewrapped(archived, kept) or archived == kept:
            return blob
        if opens_with(archived, passphrase) is not None or opens_with(kept, passphrase) is None:
            return blob
        report.header_note = (
            "the archive's escale.json wraps the key with the passphrase of its time: the one "
            "this client keeps (same repository and key, the passphrase in force) is restored"
        )
        return json.dumps(kept, indent=1).encode()

    return choose


def restore_archive(
    relay: Relay,
    archive: Path,
    force: bool = False,
    keep_alive: Callable[[], None] = lambda: None,
    where: str = "relay",
    again: str = "escale restore SECTION ARCHIVE --force",
    choose_header: Callable[[bytes, BackupReport], bytes] = lambda blob, _report: blob,
    expected_id: Optional[str] = None,
) -> BackupReport:
    """Put the objects of ``archive`` on ``relay`` (see the module), the header last.

    :param where: how messages name the relay; ``again``: the command that forces it.
    :raises UsageError: the relay folder is not empty and ``force`` is not given.
    :raises IntegrityError: the archive holds something else than relay objects.
    """
    if str(archive) == "-":
        raise UsageError("escale restore reads the archive twice (it checks it first): give a file")
    members, header = check_archive(Path(archive))
    _refuse_another_repository(relay, _parse_header(header)["id"], expected_id, archive, where)
    existing = [n for n in relay.list("") if not n.startswith("locks/")]
    if existing and not force:
        raise UsageError(
            f"{where}: the relay folder is not empty ({len(existing)} objects): a restore "
            f"replaces them; run '{again}'"
        )
    if HEADER in existing:
        relay.delete(HEADER)  # no client syncs with a half-restored repository
    report = BackupReport()
    _write_objects(relay, Path(archive), members, report, keep_alive)
    for name in existing:
        if name not in members and kind_of(name) is not None and name != HEADER:
            relay.delete(name)
            report.gone += 1
    header = choose_header(header, report)
    relay.write_bytes(HEADER, header)
    report.bytes += len(header)
    relay.sync()
    return report


def _refuse_another_repository(
    relay: Relay, archived: str, expected: Optional[str], archive: Archive, where: str
) -> None:
    """Refuse, before anything is deleted, an archive of another repository than the one this
    client joined or the relay holds (``restore photos docs.tar --force`` must not wipe
    photos).

    :raises UsageError: the ids differ."""
    ids = {expected} if expected else set()
    # a lost or unreadable header: the kept id (if any) decides
    with contextlib.suppress(RelayNotFoundError, IntegrityError):
        ids.add(_parse_header(relay.read_bytes(HEADER))["id"])
    if ids and archived not in ids:
        raise UsageError(
            f"{where}: archive {archive} holds repository {archived}, not this section's "
            f"({', '.join(sorted(i for i in ids if i))}): nothing was changed; restore it into "
            "an empty relay folder of another section"
        )


def _write_objects(
    relay: Relay,
    path: Path,
    members: dict[str, int],
    report: BackupReport,
    keep_alive: Callable[[], None],
) -> None:
    """Stream every member but the header to the relay (checked again: the file may have
    changed since the first pass)."""
    seen: dict[str, int] = {}
    with _input(path) as tar:
        for member in tar:
            name = _checked(member, seen, path)
            seen[name] = member.size
            if members.get(name) != member.size:
                raise IntegrityError(f"archive {path} changed while it was restored: run again")
            if name == HEADER:
                continue
            keep_alive()
            source = tar.extractfile(member)
            assert source is not None  # a regular file
            relay.write_stream(name, iter(lambda s=source: s.read(BLOCK), b""))  # type: ignore[misc]
            report.objects += 1
            report.bytes += member.size
    report.objects += 1  # the header, written last by the caller
