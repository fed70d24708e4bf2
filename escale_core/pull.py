"""Pulling: apply another client's update to the local folder.

For each file of the update the local copy is compared with the version this client last
synced: unchanged → replaced; already equal → recorded; changed on both sides → a conflict,
resolved the same way on every client (the later mtime keeps the name, ties broken by client
id) with the loser kept as ``name.sync-conflict-<YYYYMMDD-HHMMSS>-<client>.ext``. Tombstones
delete a file only if it is unchanged since the deleted version.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import zstandard

from .checksum import Hasher
from .crypto import KIND_CHUNK, KIND_PACK
from .errors import IntegrityError
from .history import FileRecord, LocalState
from .local import FileStat, Filters, hash_file, stat_file
from .manifest import FileEntry, Manifest, ObjectRef
from .repository import Repository, data_name
from .staging import StagedWrites, target_folder

MAX_OBJECT = 256 << 20  # larger declared objects are refused (decompression bombs)


@dataclass
class PullOptions:
    """How pulled changes may touch the local folder."""

    mode: str  # shared | download | conservative
    filters: Filters
    propagate_deletions: bool
    restore_mtime: bool
    writable: Callable[[str], bool]
    trust_cache: bool = True


@dataclass
class PullResult:
    """What applying updates did."""

    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    bytes: int = 0


def conflict_name(path: str, mtime_ns: int, client: str) -> str:
    """``dir/name.sync-conflict-<YYYYMMDD-HHMMSS>-<client>.ext`` for the losing version."""
    folder, _, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension (or a leading-dot name, which is never synced anyway)
        stem, dot, ext = name, "", ""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(mtime_ns / 1e9))
    safe_client = "".join(c if c.isalnum() or c in "-_" else "_" for c in client)[:40]
    renamed = f"{stem}.sync-conflict-{stamp}-{safe_client}{dot}{ext}"
    return f"{folder}/{renamed}" if folder else renamed


class Puller:
    """Applies updates of other clients to the local folder of client ``me``."""

    def __init__(
        self,
        repo: Repository,
        state: LocalState,
        root: Path,
        me: str,
        my_name: str,
        options: PullOptions,
        hasher: Callable[[str], Callable[[], Hasher]],
        names: dict[str, str],
    ) -> None:
        self.repo, self.state, self.root, self.me, self.my_name = repo, state, root, me, my_name
        self._root = str(root)  # string paths: pathlib costs more than the syscalls here
        self.options, self.hasher, self.names = options, hasher, names
        self.result = PullResult()
        self.progress: Optional[Callable[[int], None]] = None

    # -- deciding ------------------------------------------------------------------------

    def _local_checksum(
        self, path: str, algorithm: str
    ) -> tuple[Optional[FileStat], Optional[str]]:
        local_path = f"{self._root}/{path}"
        info = stat_file(local_path)
        if info is None:
            return None, None
        record = self.state.files.get(path)
        if (
            self.options.trust_cache
            and record is not None
            and record.matches(info)
            and record.checksum
        ):
            return info, record.checksum
        checksum = hash_file(local_path, self.hasher(algorithm))
        synced = record.synced if record else None
        self.state.set(
            path,
            FileRecord(
                info.size,
                info.mtime_ns,
                info.inode,
                checksum,
                synced,
                record.origin if record else "local",
            ),
        )
        return info, checksum

    def apply(self, manifest: Manifest) -> None:
        """Apply one update of another client.

        :raises IntegrityError: corrupt data; files already written from this update were
            verified one by one, nothing unverified is ever written.
        """
        algorithm = manifest.algorithm
        plan: list[tuple[FileEntry, Optional[str]]] = []  # entry, conflict name for local copy
        for entry in manifest.files:
            if not self.options.filters.accepts_path(entry.path):
                continue
            resent = entry.base == entry.checksum  # a full re-send of a settled version
            if resent and self.me not in manifest.snapshot_for:
                continue  # nothing new for a client that missed none of the sender's updates
            info, local = self._local_checksum(entry.path, algorithm)
            record = self.state.files.get(entry.path)
            if local == entry.checksum:
                self._record(entry, info, self._sender_name(manifest))
                continue
            if not self.options.writable(entry.path):
                self.result.kept.append(entry.path)
                continue
            synced = record.synced if record else None
            # A fast-forward: the sender built on the version we agreed on and we did not change
            # it since (or built on exactly what we have). Anything else is concurrent history.
            forward = (entry.base == synced and local == synced) or local == entry.base
            if resent and info is not None and record is not None and local == synced:
                # both hold a settled version, so one of them is stale: the newer one stays
                if entry.mtime_ns <= info.mtime_ns:
                    continue
                forward = True
            conservative = self.options.mode == "conservative"
            mine = record is None or record.origin in (None, "local")
            if info is None or forward:
                if info is not None and conservative and mine:
                    self.result.kept.append(entry.path)
                    continue
                plan.append((entry, None))
                continue
            if conservative:  # never replace a local change, not even by a conflict rename
                self.result.kept.append(entry.path)
                continue
            author = self.my_name if mine or record is None else str(record.origin)
            plan.append((entry, self._resolve(entry, info, author, self._sender_name(manifest))))
        self._write_all(manifest, plan)
        if self.options.propagate_deletions:
            for deletion in manifest.deletions:
                self._delete(deletion.path, deletion.base, algorithm, deletion.prune)

    def _resolve(self, entry: FileEntry, info: FileStat, ours: str, theirs: str) -> Optional[str]:
        """A conflict: return the name for the local copy if it loses, else ``""`` meaning
        the incoming version goes to a conflict copy.

        Every client decides alike: the later mtime keeps the name, ties go to the greater
        author name, and the loser is named after its author and mtime.
        """
        self.result.conflicts.append(entry.path)
        if (entry.mtime_ns, theirs) > (info.mtime_ns, ours):
            return conflict_name(entry.path, info.mtime_ns, ours)
        return ""

    # -- writing -------------------------------------------------------------------------

    def _write_all(self, manifest: Manifest, plan: list[tuple[FileEntry, Optional[str]]]) -> None:
        cache: dict[int, bytes] = {}
        staged = StagedWrites(self.root)
        renames: list[tuple[str, str]] = []
        factory = self.hasher(manifest.algorithm)
        mtimes = self.options.restore_mtime
        try:
            for entry, conflict in sorted(
                plan, key=lambda p: p[0].pieces[0][0] if p[0].pieces else -1
            ):
                target = entry.path
                if conflict == "":  # our version stays; theirs becomes the conflict copy
                    target = conflict_name(entry.path, entry.mtime_ns, self._sender_name(manifest))
                elif conflict:
                    renames.append((entry.path, conflict))
                staged.stage(
                    entry.path,
                    self._content(manifest, entry, cache),
                    target=target,
                    mtime_ns=entry.mtime_ns if mtimes else None,
                    checksum=entry.checksum,
                    factory=factory,
                )
                self.result.bytes += entry.size
            # every object of the update is verified: only now does the folder change (a
            # tampered object anywhere in the update leaves it untouched)
            for path, new in renames:
                self._rename_local(path, new)
            self._commit(staged, self._sender_name(manifest))
        finally:
            staged.abort()

    def _commit(self, staged: StagedWrites, author: str) -> None:
        for target, info, checksum in staged.commit():
            self.result.written.append(target)
            self.state.set(
                target,
                FileRecord(info.size, info.mtime_ns, info.inode, checksum, checksum, author),
            )

    def _sender_name(self, manifest: Manifest) -> str:
        return self.names.get(manifest.client, manifest.client[:8])

    def _rename_local(self, path: str, new: str) -> None:
        folder = target_folder(self.root, new)
        final = folder / new.rsplit("/", 1)[-1]
        os.replace(self.root / path, final)
        # the renamed copy has no record: the next round pushes it as a new file
        self.state.forget(path)

    def _content(
        self, manifest: Manifest, entry: FileEntry, cache: dict[int, bytes]
    ) -> Iterator[Union[bytes, memoryview]]:
        for index, offset, length in entry.pieces:
            ref = manifest.objects[index]
            if ref.kind == "pack":
                if index not in cache:
                    cache.clear()  # one pack in memory at a time
                    cache[index] = self._load(manifest, index, ref, KIND_PACK)
                yield cache[index][offset : offset + length]
                if self.progress is not None:
                    self.progress(length)
            elif ref.compressed:
                # a view, not a copy: a chunk is as big as max_page_size
                yield memoryview(self._load(manifest, index, ref, KIND_CHUNK))[
                    offset : offset + length
                ]
                if self.progress is not None:
                    self.progress(length)
            else:
                yield from self._stream_chunk(manifest, index, ref, offset, length)

    def _stream_chunk(
        self, manifest: Manifest, index: int, ref: ObjectRef, offset: int, length: int
    ) -> Iterator[bytes]:
        """Bytes ``offset`` to ``offset + length`` of an uncompressed chunk, one verified
        segment at a time (a big file never holds a whole chunk in memory). The chunk is read
        to its end, so truncation and a wrong size are caught before the file is kept."""
        name = data_name(manifest.client, manifest.seq, index)
        end, position = offset + length, 0
        try:
            for segment in self.repo.open_data(KIND_CHUNK, manifest.client, manifest.seq, index):
                start, stop = position, position + len(segment)
                position = stop
                if stop <= offset or start >= end:
                    continue
                if start >= offset and stop <= end:
                    yield segment
                else:
                    yield segment[max(offset - start, 0) : min(end, stop) - start]
                if self.progress is not None:
                    self.progress(len(segment))
                if position > ref.size:
                    break
        except IntegrityError as exc:  # name the object that failed, not only its update
            raise type(exc)(f"{name}: {exc}") from None
        if position != ref.size:
            raise IntegrityError(f"{name} has the wrong size")

    def _load(self, manifest: Manifest, index: int, ref: ObjectRef, kind: int) -> bytes:
        if ref.size > MAX_OBJECT:
            raise IntegrityError(f"update {manifest.seq}: object {index} declares {ref.size} bytes")
        name = data_name(manifest.client, manifest.seq, index)
        try:
            body = b"".join(self.repo.open_data(kind, manifest.client, manifest.seq, index))
        except IntegrityError as exc:  # name the object that failed, not only its update
            raise type(exc)(f"{name}: {exc}") from None
        if ref.compressed:
            try:
                body = zstandard.ZstdDecompressor().decompress(body, max_output_size=ref.size)
            except zstandard.ZstdError as exc:
                raise IntegrityError(f"{name}: {exc}") from None
        if len(body) != ref.size:
            raise IntegrityError(f"{name} has the wrong size")
        return body

    def _record(self, entry: FileEntry, info: Optional[FileStat], author: str) -> None:
        path = self.root / entry.path
        if info is not None and self.options.restore_mtime and info.mtime_ns != entry.mtime_ns:
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
            info = stat_file(path)
        if info is not None:
            record = self.state.files.get(entry.path)
            origin = record.origin if record and record.synced == entry.checksum else author
            self.state.set(
                entry.path,
                FileRecord(
                    info.size, info.mtime_ns, info.inode, entry.checksum, entry.checksum, origin
                ),
            )

    def _delete(self, path: str, base: str, algorithm: str, prune: bool = False) -> None:
        if not self.options.filters.accepts_path(path) or not self.options.writable(path):
            return
        info, local = self._local_checksum(path, algorithm)
        if info is None:
            self.state.forget(path)
            return
        record = self.state.files.get(path)
        if local != base or (
            self.options.mode == "conservative"
            and (record is None or record.origin in (None, "local"))
        ):
            self.result.kept.append(path)  # changed since the deleted version: keep it
            return
        target_folder(self.root, path)  # refuses symlinked parents
        os.unlink(self.root / path)
        self.state.forget(path)
        self.result.deleted.append(path)
        if prune:  # the sender removed the folder too
            _remove_empty_parents(self.root, path)


def _remove_empty_parents(root: Path, path: str) -> None:
    """Remove the folders a deletion left empty, up to (not including) ``root``."""
    parts = path.split("/")[:-1]
    while parts:
        try:
            os.rmdir(root.joinpath(*parts))
        except OSError:  # not empty (or already gone): keep it and its parents
            return
        parts.pop()
