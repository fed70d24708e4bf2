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
from .history import FileRecord, LocalState
from .local import FileStat, hash_file, stat_file
from .manifest import Deletion, FileEntry, Manifest, ObjectRef
from .repository import Repository, data_name

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
    """What one round pushes."""

    changed: list[str]
    deleted: list[str]
    snapshot_for: list[str] = field(default_factory=list)
    #: what the scan saw of each file (sizes order the push; files are stat'ed again on open)
    scanned: dict[str, FileStat] = field(default_factory=dict)


@dataclass
class PushResult:
    """What a push did."""

    seq: Optional[int] = None
    pushed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    over_quota: list[str] = field(default_factory=list)
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
    ) -> None:
        self.repo, self.state, self.root, self.cid, self.seq = repo, state, root, cid, seq
        self._root = str(root)
        self.page_size, self.pullers, self.hasher = page_size, pullers, hasher
        self.budget = budget  # bytes the quota still allows, or None
        self.snapshot = snapshot  # send unchanged files too (a client asked for everything)
        self.manifest = Manifest(repo.id, cid, seq, repo.checksum, pullers, time.time())
        self.result = PushResult()
        self.progress: Optional[Callable[[int], None]] = None
        self._pack = bytearray()
        self._pack_entries: list[tuple[FileEntry, FileStat]] = []
        self._done: list[tuple[FileEntry, FileStat]] = []
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
        for path in plan.deleted:
            record = self.state.files.get(path)
            if record is not None and record.synced is not None:
                folder_gone = "/" in path and not (self.root / path).parent.is_dir()
                self.manifest.deletions.append(Deletion(path, record.synced, folder_gone))
        if not self.manifest.files and not self.manifest.deletions:
            self.state.commit()
            return self.result
        # Reserve the number before publishing: a crash after the manifest is written must
        # never let this client publish the same number again.
        self.state.set_meta("last_seq", self.seq)
        self.repo.relay.sync()  # the data is durable before the manifest that names it
        self.repo.write_manifest(self.manifest)
        self.repo.relay.sync()
        self.state.set_meta("pending_push", None)
        self.result.seq = self.seq
        for entry, info in self._done:
            self.state.set(
                entry.path,
                FileRecord(
                    info.size, info.mtime_ns, info.inode, entry.checksum, entry.checksum, "local"
                ),
            )
            self.result.pushed.append(entry.path)
        for deletion in self.manifest.deletions:
            self.state.forget(deletion.path)
            self.result.deleted.append(deletion.path)
        self.state.commit()
        return self.result

    def _fits(self, size: int) -> bool:
        return (
            self.budget is None
            or self.result.bytes + len(self._pack) + size + OVERHEAD <= self.budget
        )

    def _add(self, path: str) -> None:
        source = f"{self._root}/{path}"
        try:
            fd = os.open(source, _READ_FLAGS)
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
                self._add_big(path, Path(source), info, record)
                return
            data = _read_all(fd, info.size)
        except OSError:
            return
        finally:
            os.close(fd)
        digest = self.hasher()
        digest.update(data)
        checksum = digest.hexdigest()
        if record is not None and checksum == record.synced and not self.snapshot:
            self._unchanged(path, info, checksum, record)
            return
        if len(self._pack) + len(data) > self.page_size:
            self._flush_pack()
        # the object index is known when the pack is flushed
        entry = FileEntry(
            path,
            len(data),
            info.mtime_ns,
            checksum,
            record.synced if record else None,
            [(-1, len(self._pack), len(data))],
        )
        self._pack += data
        self._pack_entries.append((entry, info))

    def _unchanged(self, path: str, info: FileStat, checksum: str, record: FileRecord) -> None:
        self.state.set(
            path,
            FileRecord(
                info.size, info.mtime_ns, info.inode, checksum, record.synced, record.origin
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
        for entry, _ in self._pack_entries:
            entry.pieces = [(index, offset, length) for _, offset, length in entry.pieces]
        self._done.extend(self._pack_entries)
        self.manifest.files.extend(e for e, _ in self._pack_entries)
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

    def _add_big(
        self, path: str, source: Path, info: FileStat, record: Optional[FileRecord]
    ) -> None:
        """Chunk a big file, hashing while reading, so it is read once."""
        if record and record.synced and record.size == info.size and not self.snapshot:
            # probably touched, not changed: one hashing pass is cheaper than a re-upload
            checksum = hash_file(source, self.hasher)
            if checksum == record.synced:
                self._unchanged(path, info, checksum, record)
                return
        digest = self.hasher()
        pieces = []
        offset = 0
        try:
            with open(source, "rb") as f:
                while True:
                    block = f.read(self.page_size)
                    if not block:
                        break
                    digest.update(block)
                    index = len(self.manifest.objects)
                    key = [path, info.size, info.mtime_ns, offset, len(block)]
                    offset += len(block)
                    compressed = self._store_chunk(index, key, block)
                    self.manifest.objects.append(ObjectRef("chunk", len(block), compressed))
                    pieces.append((index, 0, len(block)))
        except OSError:
            return
        size = sum(p[2] for p in pieces)
        entry = FileEntry(
            path, size, info.mtime_ns, digest.hexdigest(), record.synced if record else None, pieces
        )
        after = stat_file(source)
        if after is None or after.size != size or after.mtime_ns != info.mtime_ns:
            return  # changed while being read: the next round sends the new version
        self.manifest.files.append(entry)
        self._done.append((entry, info))


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
