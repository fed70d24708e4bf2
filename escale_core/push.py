"""Pushing: turn local changes into one immutable update on the relay.

Small files are concatenated into packs of up to ``max_page_size`` (zstd-compressed when that
helps); big files are cut into chunks of ``max_page_size``. Data objects are published first,
the manifest last, so a puller never sees a half-written update.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any, Callable, Optional

import zstandard

from .checksum import Hasher
from .crypto import KIND_CHUNK, KIND_PACK
from .errors import IntegrityError, RelayError
from .history import FileRecord, LocalState, Tombstone
from .local import FileStat, stat_file
from .manifest import Deletion, FileEntry, Manifest, ObjectRef
from .repository import Repository, data_name
from .vectors import Vector, bump, dumps, loads

#: Sealed size overhead per object, for quota estimates (header + tags).
OVERHEAD = 64


def compress(data: bytes) -> tuple[bytes, bool]:
    """zstd level 3, unless the first MiB shrinks by less than 5% (incompressible data)."""
    probe = data[: 1 << 20]
    if len(zstandard.ZstdCompressor(level=1).compress(probe)) > 0.95 * len(probe):
        return data, False
    packed = zstandard.ZstdCompressor(level=3).compress(data)
    return (packed, True) if len(packed) < len(data) else (data, False)


@dataclass
class PushPlan:
    """What one round pushes.

    :param changed: files to read and send (every readable file for a full update).
    :param deleted: synced files deleted locally: tombstones.
    :param snapshot_for: clients that asked for a full update.
    :param full: a full update: it lists the whole index, tombstones included (for the
        clients in ``snapshot_for``, or for any reader: ``escale fix``).
    """

    changed: list[str]
    deleted: list[str]
    snapshot_for: list[str] = field(default_factory=list)
    #: what the scan saw of each file (sizes order the push; files are stat'ed again on open)
    scanned: dict[str, FileStat] = field(default_factory=dict)
    full: bool = False

    def __post_init__(self) -> None:
        self.full = self.full or bool(self.snapshot_for)


@dataclass
class PushResult:
    """What a push did."""

    seq: Optional[int] = None
    pushed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    over_quota: list[str] = field(default_factory=list)
    #: files that cannot be opened (permission denied): not sent
    unreadable: list[str] = field(default_factory=list)
    #: files changed while being read: not sent (the next round sends them)
    changed: list[str] = field(default_factory=list)
    bytes: int = 0
    resumed: int = 0  # bytes of chunks reused from an interrupted attempt


class Pusher:
    """Builds and publishes one update of client ``cid``."""

    def __init__(
        self,
        repo: Repository,
        state: LocalState,
        root: Path,
        cid: str,
        seq: int,
        *,
        page_size: int,
        pullers: int,
        hasher: Callable[[], Hasher],
        budget: Optional[int],
        snapshot: bool = False,
        name: str = "",
        prev: int = 0,
    ) -> None:
        """:param name: this client's name (authors are named in manifests).
        :param prev: the sequence number this client used before ``seq``."""
        self.repo, self.state, self.root, self.cid, self.seq = repo, state, root, cid, seq
        self._root = str(root)
        self.page_size, self.pullers, self.hasher = page_size, pullers, hasher
        self.budget = budget  # bytes the quota still allows, or None
        #: the generation of a file this client has no version of (1; more after its local
        #: state was lost: see Engine._build_update)
        self.new_gen = 1
        self.snapshot = snapshot  # send the whole index (a client asked for everything)
        #: settled versions to send as they are (conflict copies made by a pull)
        self.announce: set[str] = set()
        self.name = name
        self.manifest = Manifest(
            repo.id, cid, seq, repo.checksum, pullers, time.time(), prev=prev, full=snapshot
        )
        self.manifest.names[cid] = name
        self.result = PushResult()
        self.progress: Optional[Callable[[int], None]] = None
        self._pack = bytearray()
        # entry, stat, and whether it is a change of this client (False: a settled version
        # sent again in a full update)
        self._pack_entries: list[tuple[FileEntry, FileStat, bool]] = []
        self._done: list[tuple[FileEntry, FileStat, bool]] = []
        # chunks an interrupted attempt at this same update already stored: index -> record
        self._resume: dict[int, list[Any]] = {}
        self._pending: dict[str, list[Any]] = {}

    def resume_from(self, pending: Optional[dict[str, Any]], stored: dict[int, int]) -> None:
        """Reuse the chunks an interrupted attempt at this update left on the relay.

        :param pending: what the attempt recorded (``pending_push`` meta), if any.
        :param stored: sizes of this update's data objects on the relay, by index.
        """
        if not pending or pending.get("seq") != self.seq:
            return
        for index, record in pending.get("chunks", {}).items():
            if stored.get(int(index)) == record[5]:  # complete: same sealed size
                self._resume[int(index)] = record
        self._pending = {k: v for k, v in pending["chunks"].items() if int(k) in self._resume}

    def run(self, plan: PushPlan) -> PushResult:
        """Push ``plan``; return what was done. Nothing is recorded locally unless the
        manifest was published."""
        self.manifest.snapshot_for = plan.snapshot_for
        # Big files first, in path order: their chunks then get the same object indices when
        # an interrupted push is tried again, so stored chunks can be reused.
        scanned, big = plan.scanned, self.page_size

        def big_first(path: str) -> tuple[bool, str]:
            info = scanned.get(path) or stat_file(f"{self._root}/{path}")
            return (info is None or info.size < big, path)

        for path in sorted(plan.changed, key=big_first):
            self._add(path)
        self._flush_pack()
        now_ns = time.time_ns()
        for path in plan.deleted:
            record = self.state.files.get(path)
            if record is not None and record.synced is not None:
                folder_gone = "/" in path and not (self.root / path).parent.is_dir()
                version = bump(loads(record.version), self.cid, self.seq)
                gen = (record.gen or 0) + 1
                self.manifest.deletions.append(
                    Deletion(path, version, self.cid, self.seq, gen, now_ns, folder_gone)
                )
        new_deletions = len(self.manifest.deletions)
        if self.snapshot:
            self._add_tombstones()
            # a full update cut short by the quota is not the whole index: readers must not
            # take it for one (it is sent again, whole, when the quota allows)
            self.manifest.full = not self.result.over_quota
        elif self.announce:
            self._add_tombstones(self.announce)
        if not self.manifest.files and not self.manifest.deletions and not self.snapshot:
            self.state.commit()  # (an empty full update still tells the requesters "all")
            return self.result
        # Reserve the number before publishing: a crash after the manifest is written must
        # never let this client publish the same number again.
        self.state.set_meta("last_seq", self.seq)
        self.repo.relay.sync()  # the data is durable before the manifest that names it
        self.repo.write_manifest(self.manifest)
        self.repo.relay.sync()
        self.state.set_meta("published_seq", self.seq)
        self.state.set_meta("pending_push", None)
        self.result.seq = self.seq
        self._record(self.manifest.deletions[:new_deletions])
        return self.result

    def _record(self, deletions: list[Deletion]) -> None:
        """The update is published: its changes are now this client's synced versions."""
        for entry, info, changed in self._done:
            if not changed:  # a settled version sent again: its record stands (new stat)
                record = self.state.files.get(entry.path)
                if record is not None:
                    self._unchanged(entry.path, info, entry.checksum, record)
                if self._resend(entry.path):  # uploaded all the same
                    self.result.pushed.append(entry.path)
                continue
            self.state.set(
                entry.path,
                FileRecord(
                    info.size,
                    info.mtime_ns,
                    info.inode,
                    entry.checksum,
                    entry.checksum,
                    self.name,
                    dumps(entry.version),
                    self.cid,
                    entry.mtime_ns,
                    entry.dot,
                    entry.gen,
                ),
            )
            self.state.drop_tombstone(entry.path)
            self.result.pushed.append(entry.path)
        resent = self.manifest.deletions[len(deletions) :]  # kept tombstones sent again
        self.result.pushed += [d.path for d in resent]
        for deletion in deletions:
            self.state.forget(deletion.path)
            self.state.set_tombstone(
                deletion.path,
                Tombstone(
                    dumps(deletion.version),
                    self.cid,
                    self.name,
                    deletion.mtime_ns,
                    deletion.dot,
                    deletion.gen,
                ),
            )
            self.result.deleted.append(deletion.path)
        self.state.commit()

    def _add_tombstones(self, only: Optional[set[str]] = None) -> None:
        """A full update lists every kept tombstone too (an announcement the ones it names):
        a client that missed the deletion learns it from here, with its history."""
        listed = {f.path for f in self.manifest.files} | {d.path for d in self.manifest.deletions}
        for path, mark in sorted(self.state.tombstones.items()):
            if (
                path in listed
                or path in self.state.files
                or (only is not None and path not in only)
            ):
                continue
            self.manifest.deletions.append(
                Deletion(path, loads(mark.version), mark.author, mark.dot, mark.gen, mark.mtime_ns)
            )
            self.manifest.names.setdefault(mark.author, mark.origin)

    def _version_of(
        self, record: Optional[FileRecord], path: str, checksum: str, mtime_ns: int
    ) -> tuple[Vector, str, int, int, int, bool]:
        """The version an entry carries: (vector, author, dot, generation, mtime, changed).
        The settled version itself when the content is the synced one (a full update sends it
        again); otherwise a change of this client, on top of what it had (a synced version or
        a tombstone)."""
        if record is not None and record.synced == checksum and record.version and record.dot:
            author = record.author or self.cid
            self.manifest.names.setdefault(author, record.origin or self.name)
            mtime = record.vmtime if record.vmtime is not None else mtime_ns
            return loads(record.version), author, record.dot, record.gen or 1, mtime, False
        base, gen = None, 0
        if record is not None and record.synced and record.version:
            base, gen = loads(record.version), record.gen or 0
        elif path in self.state.tombstones:
            mark = self.state.tombstones[path]
            base, gen = loads(mark.version), mark.gen
        if base is None:
            gen = self.new_gen - 1
        return bump(base, self.cid, self.seq), self.cid, self.seq, gen + 1, mtime_ns, True

    def _resend(self, path: str) -> bool:
        """Whether a settled version is sent again (a full update, or an announced copy)."""
        return self.snapshot or path in self.announce

    def _fits(self, size: int) -> bool:
        return (
            self.budget is None
            or self.result.bytes + len(self._pack) + size + OVERHEAD <= self.budget
        )

    def _add(self, path: str) -> None:
        source = f"{self._root}/{path}"
        try:
            fd = os.open(source, _READ_FLAGS)
        except PermissionError:
            self.result.unreadable.append(path)
            return
        except OSError:
            return  # vanished (or replaced by a symlink) since the scan: the next round sees it
        try:
            st = os.fstat(fd)
            if not S_ISREG(st.st_mode):
                return
            info = FileStat(st.st_size, st.st_mtime_ns, st.st_ino)
            record = self.state.files.get(path)
            if not self._fits(info.size):
                self.result.over_quota.append(path)
                return
            if info.size >= self.page_size:
                self._add_big(path, fd, info, record)
                return
            data = _read_all(fd, info.size)
        except OSError:
            return
        finally:
            os.close(fd)
        if not self._still(path, info, len(data)):
            return
        self._add_small(path, data, info, record)

    def _still(self, path: str, info: FileStat, read: int) -> bool:
        """Whether the file at ``path`` is still the one that was just read, ``read`` bytes
        (``info`` taken when it was opened): one changed meanwhile may have been read half
        old, half new, so it is left for the next round (noted); one deleted meanwhile is not
        sent."""
        after = stat_file(f"{self._root}/{path}")
        if after is None:
            return False  # vanished: the next round's scan sees it gone
        if after != info or read != info.size:
            self.result.changed.append(path)
            return False
        return True

    def _add_small(
        self, path: str, data: bytes, info: FileStat, record: Optional[FileRecord]
    ) -> None:
        """Add a small file's content to the current pack (unless unchanged)."""
        digest = self.hasher()
        digest.update(data)
        checksum = digest.hexdigest()
        if record is not None and checksum == record.synced and not self._resend(path):
            self._unchanged(path, info, checksum, record)
            return
        if len(self._pack) + len(data) > self.page_size:
            self._flush_pack()
        version, author, dot, gen, mtime, changed = self._version_of(
            record, path, checksum, info.mtime_ns
        )
        # the object index is known when the pack is flushed
        piece = [(-1, len(self._pack), len(data))]
        entry = FileEntry(path, len(data), mtime, checksum, version, author, dot, gen, piece)
        self._pack += data
        self._pack_entries.append((entry, info, changed))

    def _unchanged(self, path: str, info: FileStat, checksum: str, record: FileRecord) -> None:
        self.state.set(
            path,
            record._replace(
                size=info.size, mtime_ns=info.mtime_ns, inode=info.inode, checksum=checksum
            ),
        )
        self.result.unchanged.append(path)

    def _flush_pack(self) -> None:
        if not self._pack_entries:
            return
        body, compressed = compress(bytes(self._pack))
        index = len(self.manifest.objects)
        self._write_object(KIND_PACK, iter([body]))
        self.manifest.objects.append(ObjectRef("pack", len(self._pack), compressed))
        for entry, _, _ in self._pack_entries:
            entry.pieces = [(index, offset, length) for _, offset, length in entry.pieces]
        self._done.extend(self._pack_entries)
        self.manifest.files.extend(e for e, _, _ in self._pack_entries)
        self._pack = bytearray()
        self._pack_entries = []

    def _write_object(self, kind: int, chunks: Iterator[bytes]) -> int:
        """Seal and store the next data object; return its sealed size."""
        index = len(self.manifest.objects)
        before = self.result.bytes
        sealed = self.repo.seal_data(kind, self.cid, self.seq, index, chunks)
        self.repo.relay.write_stream(
            data_name(self.cid, self.seq, index), _count(sealed, self.result, self.progress)
        )
        return self.result.bytes - before

    def _store_chunk(self, index: int, key: list[Any], block: bytes) -> bool:
        """Store one chunk (unless an interrupted attempt already did); return whether it is
        compressed."""
        previous = self._resume.get(index)
        if previous is not None and _chunk_key_matches(previous, key) and self._intact(index):
            self.result.resumed += len(block)
            return bool(previous[6])
        body, compressed = compress(block)
        sealed = self._write_object(KIND_CHUNK, iter([body]))
        self._pending[str(index)] = [*key, sealed, compressed]
        self.state.set_meta("pending_push", {"seq": self.seq, "chunks": self._pending})
        return compressed

    def _intact(self, index: int) -> bool:
        """Whether a chunk stored by an interrupted attempt can be reused: on a relay that
        syncs lazily, a crash may have left it torn, so it is read and authenticated first
        (cheaper than sealing and writing it again)."""
        if not self.repo.relay.deferred_sync:
            return True
        try:
            for _ in self.repo.open_data(KIND_CHUNK, self.cid, self.seq, index):
                pass
        except (IntegrityError, RelayError):
            return False
        return True

    def _add_big(self, path: str, fd: int, info: FileStat, record: Optional[FileRecord]) -> None:
        """Chunk a big file, hashing while reading, so it is read once (through ``fd``, the
        file opened without following a symlink)."""
        if record and record.synced and record.size == info.size and not self._resend(path):
            # probably touched, not changed: one hashing pass is cheaper than a re-upload
            checksum = _hash_fd(fd, self.hasher)
            if checksum == record.synced:
                if self._still(path, info, info.size):
                    self._unchanged(path, info, checksum, record)
                return
            os.lseek(fd, 0, os.SEEK_SET)
        digest = self.hasher()
        pieces = []
        offset = 0
        while block := _read_block(fd, self.page_size):
            digest.update(block)
            index = len(self.manifest.objects)
            key = [path, info.size, info.mtime_ns, offset, len(block)]
            offset += len(block)
            compressed = self._store_chunk(index, key, block)
            self.manifest.objects.append(ObjectRef("chunk", len(block), compressed))
            pieces.append((index, 0, len(block)))
        # (chunks of a file dropped here stay unnamed in the update: harmless, collected)
        if not self._still(path, info, offset):
            return
        checksum = digest.hexdigest()
        version, author, dot, gen, mtime, changed = self._version_of(
            record, path, checksum, info.mtime_ns
        )
        entry = FileEntry(path, offset, mtime, checksum, version, author, dot, gen, pieces)
        self.manifest.files.append(entry)
        self._done.append((entry, info, changed))


# O_NONBLOCK: a file swapped for a FIFO since the scan must not hang the round
_READ_FLAGS = (
    os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


def _read_all(fd: int, size: int) -> bytes:
    """The whole content of an open file expected to hold ``size`` bytes (it may have grown)."""
    data = os.read(fd, size + 1)
    if len(data) <= size:  # a short read of a regular file: end of file
        return data
    parts = [data]
    while block := os.read(fd, 1 << 20):
        parts.append(block)
    return b"".join(parts)


def _read_block(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``fd`` (fewer only at the end of the file)."""
    parts = []
    while size > 0 and (block := os.read(fd, min(size, 1 << 24))):
        parts.append(block)
        size -= len(block)
    return b"".join(parts)


def _hash_fd(fd: int, factory: Callable[[], Hasher]) -> str:
    """Hex checksum of an open file, read from its current offset in 1 MiB blocks."""
    hasher = factory()
    while block := os.read(fd, 1 << 20):
        hasher.update(block)
    return hasher.hexdigest()


def _chunk_key_matches(record: list[Any], key: list[Any]) -> bool:
    return record[:5] == key


def _count(
    chunks: Iterator[bytes], result: PushResult, progress: Optional[Callable[[int], None]]
) -> Iterator[bytes]:
    for chunk in chunks:
        result.bytes += len(chunk)
        if progress is not None:
            progress(len(chunk))
        yield chunk
