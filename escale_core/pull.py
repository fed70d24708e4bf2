"""Pulling: apply another client's update to the local folder.

Each version of the update is compared with this client's index by version vectors
(:mod:`escale_core.causality`): known versions are ignored, descendants replace the local
version, concurrent ones are conflicts resolved alike on every client. Nothing of an update
touches the folder before all of its data was downloaded and verified; then, file by file, the
target is re-checked right before it is replaced (a user's edit made meanwhile is never
overwritten: the update is tried again next round, after that edit was pushed), and what is
replaced or deleted is kept as a previous version (:mod:`escale_core.versions`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

from .causality import Outcome, Resolution, Version, conflict_copy, conflict_name, reconcile
from .checksum import Hasher
from .errors import IntegrityError
from .fetch import UpdateData
from .history import FileRecord, LocalState, Tombstone
from .local import FileStat, Filters, hash_file, stat_file
from .manifest import Deletion, FileEntry, Manifest
from .repository import Repository
from .staging import StagedWrites, target_folder
from .vectors import dominates, dumps, loads
from .versions import VersionPolicy, keep_version

__all__ = ["PullOptions", "PullResult", "Puller", "conflict_name"]


@dataclass
class PullOptions:
    """How pulled changes may touch the local folder."""

    mode: str  # shared | download | conservative
    filters: Filters
    propagate_deletions: bool
    restore_mtime: bool
    writable: Callable[[str], bool]
    trust_cache: bool = True
    versions: VersionPolicy = field(default_factory=VersionPolicy)


@dataclass
class PullResult:
    """What applying updates did."""

    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    #: paths changed locally while a pull wanted to replace them: tried again next round
    deferred: list[str] = field(default_factory=list)
    #: previous versions kept under .escale/versions
    versioned: int = 0
    #: paths whose concurrent versions were decided here, and the conflict copies made:
    #: pushed as they are next round, so that a client that saw only one side of the conflict
    #: (or forgot a tombstone) reaches the same result
    copies: list[str] = field(default_factory=list)
    bytes: int = 0


@dataclass(slots=True)  # one per file pulled
class _Write:
    """Put an incoming file at ``target``.

    :param expect: what the decision saw at ``target`` (``None``: nothing); anything else
        there at commit time defers the update.
    :param copy_to: where the local file goes (a conflict copy) instead of the versions
        folder, with the copy's version (``None``: left unrecorded).
    :param record: the version recorded for ``target``; ``None`` leaves it unrecorded (a new
        local file, pushed by this client).
    """

    entry: FileEntry
    target: str
    expect: Optional[FileStat]
    record: Optional[Version]
    copy_to: Optional[tuple[str, Optional[Version]]] = None


@dataclass(slots=True)  # one per file pulled
class _Delete:
    """Delete the local file ``path`` (it must still be ``expect``), recording ``version``;
    its content goes to the conflict copy ``copy_to`` when given, else to the versions."""

    path: str
    expect: FileStat
    version: Version
    prune: bool
    copy_to: Optional[tuple[str, Version]] = None


@dataclass
class _Plan:
    """What one update does to the folder and the index."""

    writes: list[_Write] = field(default_factory=list)
    deletes: list[_Delete] = field(default_factory=list)
    records: list[Callable[[], None]] = field(default_factory=list)
    deferred: bool = False
    #: entries waiting for a deletion of the same update: a file in place of their folder,
    #: or a folder in place of the file (a path that changed type on the sender's side);
    #: or for an earlier entry that writes the same local path (see ``_decide_apart``)
    blocked: set[str] = field(default_factory=set)
    #: synced files standing where another client made a folder: the folder keeps the name,
    #: each file goes to its conflict copy (its stat and version when decided)
    evictions: dict[str, tuple[FileStat, Version]] = field(default_factory=dict)
    #: the local paths the writes place (their targets and the conflict copies they link)
    targets: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Mark:
    """How far a plan and a result were before one entry was decided: undoes that decision."""

    writes: int
    records: int
    reported: tuple[int, ...]

    @classmethod
    def of(cls, plan: _Plan, result: PullResult) -> _Mark:
        return cls(len(plan.writes), len(plan.records), tuple(map(len, _reported(result))))

    def undo(self, plan: _Plan, result: PullResult) -> None:
        del plan.writes[self.writes :], plan.records[self.records :]
        for reported, length in zip(_reported(result), self.reported):
            del reported[length:]


def _reported(result: PullResult) -> tuple[list[str], ...]:
    """The lists of ``result`` that deciding an entry appends to."""
    return result.conflicts, result.copies, result.kept, result.deferred


def _written(writes: list[_Write]) -> set[str]:
    """The local paths ``writes`` place: their targets and the conflict copies they link."""
    return {w.target for w in writes} | {w.copy_to[0] for w in writes if w.copy_to is not None}


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
        scanned: Optional[Mapping[str, FileStat]] = None,
    ) -> None:
        """:param scanned: what this round's push saw of the folder (``None`` if it did not
        push): a file that differs from its record *and* from the scan was changed during
        the round, and its pull is deferred instead of resolved."""
        self.repo, self.state, self.root, self.me, self.my_name = repo, state, root, me, my_name
        self._root = str(root)  # string paths: pathlib costs more than the syscalls here
        self.options, self.hasher = options, hasher
        self.scanned = scanned
        #: applying this client's own old updates (after its local state was lost): its
        #: files, all made later, are never replaced by them
        self.own = False
        #: the first pull after this client's local state was lost (see _decide_unpublished_file)
        self.rejoining = False
        self._folders_checked: set[str] = set()  # folders of the current update seen safe
        # folders seen missing while planning: nothing below them needs a stat (reset before
        # anything is placed, which may create them)
        self._missing: set[str] = set()
        self._clearing: set[str] = set()  # what the current update's deletions may clear
        self._final = False  # the second pass over entries that waited for a deletion
        self.result = PullResult()
        self.progress: Optional[Callable[[int], None]] = None
        #: decide, report, change nothing (``escale sync --dry-run``)
        self.dry_run = False

    # -- the local side ------------------------------------------------------------------

    def _local(self, path: str) -> tuple[Optional[Version], Optional[FileStat], bool]:
        """(the index's version of ``path``, the file on disk now, whether they agree)."""
        missing = path.rpartition("/")[0] in self._missing
        info = None if missing else stat_file(f"{self._root}/{path}")
        record = self.state.files.get(path)
        if record is not None and record.synced is not None and record.version is not None:
            version = Version(
                loads(record.version),
                record.author or self.me,
                record.origin or self.my_name,
                record.vmtime if record.vmtime is not None else record.mtime_ns,
                record.synced,
                record.dot or 0,
                record.gen or 1,
            )
            clean = info is not None and self._checksum(path, info) == record.synced
            return version, info, clean
        mark = self.state.tombstones.get(path)
        if mark is not None:
            version = Version(
                loads(mark.version), mark.author, mark.origin, mark.mtime_ns, None, mark.dot,
                mark.gen,
            )  # fmt: skip
            return version, info, info is None
        return None, info, info is None

    def _checksum(self, path: str, info: FileStat) -> str:
        """The checksum of the local file (from the cache while its stat is unchanged)."""
        record = self.state.files.get(path)
        if (
            self.options.trust_cache
            and record is not None
            and record.matches(info)
            and record.checksum
        ):
            return record.checksum
        checksum = hash_file(f"{self._root}/{path}", self.hasher(self.repo.checksum))
        if record is not None:
            self.state.set(
                path,
                record._replace(
                    size=info.size, mtime_ns=info.mtime_ns, inode=info.inode, checksum=checksum
                ),
            )
        return checksum

    def _changed_during_round(self, path: str, info: Optional[FileStat]) -> bool:
        """Whether the file changed after this round's push looked at it."""
        return self.scanned is not None and self.scanned.get(path) != info

    # -- deciding ------------------------------------------------------------------------

    def apply(self, manifest: Manifest) -> bool:
        """Apply one update of another client; return False if some of it was deferred
        (a local file changed meanwhile): the update is then applied again next round.

        :raises IntegrityError: corrupt data; nothing of the update was placed.
        """
        if manifest.algorithm != self.repo.checksum:  # checksums must compare across clients
            raise IntegrityError(
                f"the update uses checksum '{manifest.algorithm}', the repository "
                f"'{self.repo.checksum}'"
            )
        self._clearing = _cleared_by(manifest, self.options)
        plan = self._plan(manifest, None)
        if self.dry_run:
            self._preview(plan)
            return True
        deferred = self._carry_out(manifest, plan)
        for _ in range(2):  # the update's deletions, then evictions, make the new type's place
            if not plan.blocked or deferred:
                break
            plan = self._plan(manifest, plan.blocked, final=True)
            deferred = self._carry_out(manifest, plan) or deferred
        return not (deferred or plan.blocked)

    def _carry_out(self, manifest: Manifest, plan: _Plan) -> bool:
        """Execute ``plan``, then move aside the files standing where folders go; return
        whether something was deferred (a local change met: tried again next round)."""
        self._execute(manifest, plan)
        deferred = plan.deferred
        for blocker, (info, version) in plan.evictions.items():
            deferred = not self._evict(blocker, info, version) or deferred
        return deferred

    def _plan(self, manifest: Manifest, only: Optional[set[str]], final: bool = False) -> _Plan:
        """Decide every entry of ``manifest`` (or those in ``only``) before anything changes.

        :param final: the second pass: an entry still blocked by a file or folder of the other
            type is refused (its deletion was deferred, or the folder holds other files).
        """
        plan = _Plan()
        self._final = final
        self._folders_checked, self._missing = set(), set()
        try:
            self._decide_all(plan, manifest, only)
        finally:
            self._missing = set()
        return plan

    def _decide_all(self, plan: _Plan, manifest: Manifest, only: Optional[set[str]]) -> None:
        """Decide the entries (``only`` those, if given) and then the deletions."""
        names, accepts = manifest.names, self.options.filters.accepts_path
        for entry in manifest.files:
            if (only is None or entry.path in only) and accepts(entry.path):
                incoming = Version(
                    entry.version, entry.author, names[entry.author], entry.mtime_ns,
                    entry.checksum, entry.dot, entry.gen,
                )  # fmt: skip
                self._decide_apart(plan, entry.path, incoming, entry)
        if self.options.propagate_deletions and only is None:
            for deletion in manifest.deletions:
                if accepts(deletion.path):
                    incoming = Version(
                        deletion.version, deletion.author, names[deletion.author],
                        deletion.mtime_ns, None, deletion.dot, deletion.gen,
                    )  # fmt: skip
                    self._decide(plan, deletion.path, incoming, deletion)

    def _decide_apart(self, plan: _Plan, path: str, incoming: Version, entry: FileEntry) -> None:
        """Decide ``entry`` unless it writes a path an earlier entry of the update writes.

        A conflict copy is named after its author and the second of its mtime, so two
        versions of one author met within one second share the name: one arrives as the copy
        an entry makes, the other as an entry of that name. Placed in one batch, one would be
        recorded over the other's bytes, and the index would never see the difference. So
        the later entry's decision is undone and it waits for the next pass, where it meets
        the first in the index like any version: the one that has seen the other keeps the
        name, the other goes to the previous versions (the same on every client).
        """
        mark = _Mark.of(plan, self.result)
        self._decide(plan, path, incoming, entry)
        written = _written(plan.writes[mark.writes :])
        if written.isdisjoint(plan.targets):
            plan.targets |= written
            return
        mark.undo(plan, self.result)
        plan.blocked.add(path)

    def _decide(
        self, plan: _Plan, path: str, incoming: Version, item: Union[FileEntry, Deletion]
    ) -> None:
        if isinstance(item, FileEntry):
            if self._type_changes(path):
                plan.blocked.add(path)
                return
            if self._evicting(plan, path):
                return
        self._check_folders(path, deletion=isinstance(item, Deletion))
        if isinstance(item, FileEntry) and self._folder_stays(path):
            # another client's folder, or one holding files of this client only: the folder
            # keeps the name and the incoming file arrives as its conflict copy
            self.result.conflicts.append(path)
            self._write_copy(plan, path, item, incoming)
            return
        local, info, clean = self._local(path)
        if local is not None and dominates(local.vector, incoming.vector):
            return  # nothing new
        if not clean:
            self._decide_unsettled(plan, path, incoming, item, local, info)
            return
        resolution = reconcile(local, incoming)
        if resolution.concurrent:  # pushed next round, as decided
            self.result.copies.append(path)
        if resolution.outcome is Outcome.MERGE:
            plan.records.append(lambda: self._record_merge(path, resolution, info))
        elif resolution.outcome is Outcome.KEEP_LOCAL:
            self._keep_local(plan, path, resolution, item, info)
        elif resolution.outcome is Outcome.TAKE:
            self._take(plan, path, resolution, item, local, info)

    def _take(
        self,
        plan: _Plan,
        path: str,
        resolution: Resolution,
        item: Union[FileEntry, Deletion],
        local: Optional[Version],
        info: Optional[FileStat],
    ) -> None:
        """The incoming version replaces the local one (a descendant, or a conflict winner)."""
        incoming = resolution.winner
        if info is not None and local is not None and local.checksum == incoming.checksum:
            plan.records.append(lambda: self._record_merge(path, resolution, info))
            return
        if info is not None and self._protected(path, local):
            self.result.kept.append(path)
            return
        if resolution.loser is not None:
            self.result.conflicts.append(path)
        copy_to = None
        if resolution.loser is not None and info is not None:
            copy_path, copy = conflict_copy(path, resolution.loser)
            if not self._has(copy_path, copy):
                copy_to = (copy_path, copy)
        version = incoming
        if isinstance(item, Deletion):
            if info is None:
                plan.records.append(lambda: self._record_tombstone(path, resolution))
            else:  # a deletion that wins a conflict leaves the local edit as its copy
                plan.deletes.append(_Delete(path, info, version, item.prune, copy_to))
            return
        plan.writes.append(_Write(item, path, info, version, copy_to))

    def _keep_local(
        self,
        plan: _Plan,
        path: str,
        resolution: Resolution,
        item: Union[FileEntry, Deletion],
        info: Optional[FileStat],
    ) -> None:
        """A conflict the local version wins: it keeps the path; a losing incoming file goes
        to its conflict copy."""
        if self.options.mode == "conservative":
            self.result.kept.append(path)
            return
        plan.records.append(lambda: self._record_merge(path, resolution, info))
        loser = resolution.loser
        if loser is None or not isinstance(item, FileEntry):
            return
        self.result.conflicts.append(path)
        self._write_copy(plan, path, item, loser)

    def _decide_unsettled(
        self,
        plan: _Plan,
        path: str,
        incoming: Version,
        item: Union[FileEntry, Deletion],
        local: Optional[Version],
        info: Optional[FileStat],
    ) -> None:
        """The local file differs from the index: a change this client has not published.
        The index version meets the incoming one as on any client; the unpublished change
        then stays on top of the result (its push descends from it), and whatever it would
        hide is kept as a conflict copy."""
        if self._changed_during_round(path, info):
            plan.deferred = True  # pushed next round, then resolved like any conflict
            self.result.deferred.append(path)
            return
        now = None if info is None else self._checksum(path, info)
        if local is None:
            self._decide_unpublished_file(plan, path, incoming, item, info, now)
            return
        resolution = reconcile(local, incoming)
        if resolution.outcome is Outcome.IGNORE:
            return
        if resolution.concurrent:
            self.result.copies.append(path)
        if now == incoming.checksum:  # it already has exactly this (or has no file either)
            adopted = Resolution(Outcome.MERGE, dict(incoming.vector), incoming)
            if info is None:
                plan.records.append(lambda: self._record_tombstone(path, adopted))
            else:
                plan.records.append(lambda: self._record_merge(path, adopted, info))
            return
        if self.options.mode == "conservative" or not self.options.writable(path):
            self.result.kept.append(path)
            return
        if resolution.outcome is not Outcome.TAKE:  # the index version stays
            if resolution.loser is incoming and isinstance(item, FileEntry):
                self._write_copy(plan, path, item, incoming)
            return
        self._unpublished_meets_newer(plan, path, resolution, item, info)

    def _unpublished_meets_newer(
        self,
        plan: _Plan,
        path: str,
        resolution: Resolution,
        item: Union[FileEntry, Deletion],
        info: Optional[FileStat],
    ) -> None:
        """The incoming version replaces the index version an unpublished change was made
        on: keep the change, and the incoming version beside it."""
        incoming = resolution.winner
        if info is None:  # deleted here, but the incoming version is not what was deleted
            if isinstance(item, Deletion):
                plan.records.append(lambda: self._record_tombstone(path, resolution))
            else:
                plan.writes.append(_Write(item, path, None, incoming))
            return
        if isinstance(item, Deletion):  # an unpublished edit outlives a deletion
            plan.records.append(lambda: self._record_unpublished(path, incoming))
            return
        self.result.conflicts.append(path)
        if self.options.mode == "download":
            # a client that never pushes: the incoming file takes the path, the local edit
            # is kept beside it (on this client only)
            copy_path = conflict_name(path, info.mtime_ns, self.my_name)
            plan.writes.append(_Write(item, path, info, incoming, (copy_path, None)))
            return
        # The local edit keeps the path and is pushed on top of the incoming version, which
        # is kept as its conflict copy.
        plan.records.append(lambda: self._record_unpublished(path, incoming))
        self._write_copy(plan, path, item, incoming)

    def _decide_unpublished_file(
        self,
        plan: _Plan,
        path: str,
        incoming: Version,
        item: Union[FileEntry, Deletion],
        info: Optional[FileStat],
        now: Optional[str],
    ) -> None:
        """A file this client never published (new here, or its state was lost) meets a
        version it has no history with."""
        adopted = Resolution(Outcome.MERGE, dict(incoming.vector), incoming)
        if now == incoming.checksum or info is None:
            plan.records.append(lambda: self._record_merge(path, adopted, info))
            return
        if self.own or (self.rejoining and incoming.author == self.me):
            # A version this client made before its local state was lost, from its own old
            # update or from another client's (a full update): the file here differs and may
            # well be a later version of its own that it can no longer tell from a new file
            # (the update that published it was collected). It is left as it is: its push as
            # new descends from every version this client ever numbered, so it replaces this
            # one everywhere. Deciding a conflict instead took the older version back here
            # while the others kept the later one, and the folders never converged.
            return
        if self.options.mode == "conservative" or not self.options.writable(path):
            self.result.kept.append(path)
            return
        if isinstance(item, Deletion):  # the file's first push descends from the deletion
            plan.records.append(lambda: self._record_tombstone(path, adopted))
            return
        self.result.conflicts.append(path)
        # A client in download mode never pushes this file, so no other client ever decides
        # between it and the incoming version: the incoming one takes the path, the local file
        # is kept beside it (as for an unpublished edit in download mode). Keeping the local
        # file at the path left the index without the path's version: once the user deleted
        # that file, nothing told the others, and the folders differed for good.
        if self.options.mode == "download" or self._local_loses(info, now, incoming):
            # as every client will decide when this file is pushed: the later one keeps the
            # path, the other is kept beside it (this one is pushed as a new file)
            copy_path = conflict_name(path, info.mtime_ns, self.my_name)
            plan.writes.append(_Write(item, path, info, incoming, (copy_path, None)))
            return
        self._write_copy(plan, path, item, incoming)

    def _write_copy(self, plan: _Plan, path: str, item: FileEntry, loser: Version) -> None:
        """Write the incoming version as its conflict copy (unless already there)."""
        copy_path, copy = conflict_copy(path, loser)
        if not self._has(copy_path, copy):
            before = stat_file(f"{self._root}/{copy_path}")
            plan.writes.append(_Write(item, copy_path, before, copy))

    def _folder_stays(self, path: str) -> bool:
        """Whether a folder stands at ``path`` (an empty one is removed: it holds nothing)."""
        if path.rpartition("/")[0] in self._missing:
            return False
        target = f"{self._root}/{path}"
        if not os.path.isdir(target) or os.path.islink(target):
            return False
        try:
            os.rmdir(target)
        except OSError:
            return True
        return False

    def _evicting(self, plan: _Plan, path: str) -> bool:
        """Whether the file ``path`` waits for a synced file standing where one of its folders
        goes (a file and a folder made under one name on two clients): the folder wins on
        every client, and the file goes to its conflict copy, then this entry is placed."""
        blocker = self._file_in_the_way(path)
        if blocker is None:
            return False
        local, info, clean = self._local(blocker)
        if local is None or local.checksum is None or info is None:
            return False  # not a synced file: refused as "not a folder"
        if not clean:  # an edit not pushed yet goes first; the folder wins next round
            plan.deferred = True
            self.result.deferred.append(path)
            return True
        plan.evictions[blocker] = (info, local)
        plan.blocked.add(path)
        return True

    def _file_in_the_way(self, path: str) -> Optional[str]:
        """The highest folder of ``path`` that is a regular file on disk, if any."""
        if path.rpartition("/")[0] in self._folders_checked:
            return None  # its folders were seen as folders (or missing) for an earlier entry
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            try:
                mode = os.lstat(f"{self._root}/{folder}").st_mode
            except FileNotFoundError:
                return None
            if not stat.S_ISDIR(mode):
                return folder if stat.S_ISREG(mode) else None
        return None

    def _evict(self, path: str, info: FileStat, version: Version) -> bool:
        """Move the synced file ``path`` to its conflict copy (a hard link, then unlink) so a
        folder can take its name; its record stays, so the next push sends its deletion.
        False if it changed since the decision (tried again next round)."""
        final = f"{self._root}/{path}"
        copy_path, copy = conflict_copy(path, version)
        kept = self._has(copy_path, copy)  # made already, from another client's update
        if stat_file(final) != info or not (kept or self._link_copy(final, copy_path, copy)):
            self.result.deferred.append(path)
            return False
        if kept and self.options.versions.kind != "none":
            self._keep(path, move=True)  # the same content is the copy: this one is a version
        else:
            os.unlink(final)
        if not kept:
            self._set_record(copy_path, info, copy)  # a link keeps the stat
            self.result.copies.append(copy_path)
        self.result.conflicts.append(path)
        self.state.commit()
        return True

    def _type_changes(self, path: str) -> bool:
        """Whether the file ``path`` must wait for this update's deletions: a file it deletes
        stands where a folder of ``path`` goes, or ``path`` is a folder it empties. In the
        final pass an empty folder left in the way is removed (it holds nothing to keep)."""
        clearing = self._clearing
        if not clearing:
            return False
        target = f"{self._root}/{path}"
        if path in clearing and os.path.isdir(target) and not os.path.islink(target):
            if not self._final:
                return True
            try:
                os.rmdir(target)
            except OSError:
                return False  # it still holds files: refused as "a folder has that name"
        folder = path.rpartition("/")[0]
        while folder and not self._final:
            if folder in clearing and os.path.isfile(f"{self._root}/{folder}"):
                return True
            folder = folder.rpartition("/")[0]
        return False

    def _check_folders(self, path: str, deletion: bool = False) -> None:
        """Refuse a path whose folders are reached through a symlink or are files (nothing
        is ever read, written or deleted outside the folder); a deletion below a file only
        records its tombstone (nothing can be there)."""
        folder = path.rpartition("/")[0]
        checked = self._folders_checked
        while folder and folder not in checked:
            try:
                mode: Optional[int] = os.lstat(f"{self._root}/{folder}").st_mode
            except FileNotFoundError:
                mode = None
                self._missing.add(folder)
            if mode is not None and stat.S_ISLNK(mode):
                raise IntegrityError(f"refusing to write {path}: {folder} is a symlink")
            if mode is not None and not stat.S_ISDIR(mode):
                if deletion and stat.S_ISREG(mode):
                    return
                raise IntegrityError(f"refusing to write {path}: {folder} is not a folder")
            checked.add(folder)
            folder = folder.rpartition("/")[0]

    def _local_loses(self, info: FileStat, checksum: Optional[str], incoming: Version) -> bool:
        """Whether an unpublished local file ranks below ``incoming`` as a concurrent version
        authored here would."""
        mine = Version({}, self.me, self.my_name, info.mtime_ns, checksum, 0, 1)
        return incoming.rank() > mine.rank()

    def _protected(self, path: str, local: Optional[Version]) -> bool:
        """Whether a local file may not be replaced or deleted: not writable, or authored
        here in ``conservative`` mode."""
        if not self.options.writable(path):
            return True
        return self.options.mode == "conservative" and local is not None and local.author == self.me

    def _has(self, path: str, version: Version) -> bool:
        """Whether the index already holds ``version`` at ``path`` (or something newer)."""
        record = self.state.files.get(path)
        if record is not None and record.version is not None and record.synced is not None:
            return dominates(loads(record.version), version.vector)
        mark = self.state.tombstones.get(path)
        return mark is not None and dominates(loads(mark.version), version.vector)

    # -- recording -------------------------------------------------------------------------

    def _record_merge(self, path: str, resolution: Resolution, info: Optional[FileStat]) -> None:
        """Same content (or a winning local version): the history grows, nothing moves."""
        winner = resolution.winner
        if winner.deleted or info is None:
            self._record_tombstone(path, resolution)
            return
        local_path = f"{self._root}/{path}"
        if self.options.restore_mtime and info.mtime_ns != winner.mtime_ns:
            os.utime(local_path, ns=(winner.mtime_ns, winner.mtime_ns))
            info = stat_file(local_path) or info
        self._set_record(path, info, winner)

    def _record_tombstone(self, path: str, resolution: Resolution) -> None:
        self.state.forget(path)
        self._set_tombstone(path, resolution.winner)

    def _set_tombstone(self, path: str, version: Version) -> None:
        self.state.set_tombstone(
            path,
            Tombstone(
                dumps(version.vector), version.author, version.name, version.mtime_ns,
                version.dot, version.gen,
            ),
        )  # fmt: skip

    def _record_unpublished(self, path: str, incoming: Version) -> None:
        """An unpublished local change stays on top of ``incoming``: its next push replaces
        it (the record keeps an invalid stat, so the push re-reads the file)."""
        if incoming.deleted:
            self._set_tombstone(path, incoming)
            return
        self.state.drop_tombstone(path)
        self.state.set(
            path,
            FileRecord(
                -1, 0, 0, None, incoming.checksum, incoming.name, dumps(incoming.vector),
                incoming.author, incoming.mtime_ns, incoming.dot, incoming.gen,
            ),
        )  # fmt: skip

    def _set_record(self, path: str, info: FileStat, version: Version) -> None:
        self.state.drop_tombstone(path)
        self.state.set(
            path,
            FileRecord(
                info.size, info.mtime_ns, info.inode, version.checksum, version.checksum,
                version.name, dumps(version.vector), version.author, version.mtime_ns,
                version.dot, version.gen,
            ),
        )  # fmt: skip

    # -- writing -------------------------------------------------------------------------

    def _execute(self, manifest: Manifest, plan: _Plan) -> None:
        """Download and verify everything first; then place it, file by file re-checked."""
        by_target = {w.target: w for w in plan.writes}
        data = UpdateData(self.repo, manifest, self.progress)
        staged = StagedWrites(self.root)
        factory = self.hasher(manifest.algorithm)
        mtimes = self.options.restore_mtime
        try:
            for write in sorted(plan.writes, key=_first_object):
                entry = write.entry
                staged.stage(
                    entry.path,
                    data.content(entry),
                    target=write.target,
                    mtime_ns=entry.mtime_ns if mtimes else None,
                    checksum=entry.checksum,
                    factory=factory,
                )
                self.result.bytes += entry.size
            data.close()
            # every object of the update is verified: only now does the folder change
            placed = staged.commit(lambda rel, final: self._replaceable(by_target[rel], final))
        finally:
            staged.abort()
        for target, info, _ in placed:
            self._placed(by_target.pop(target), info)
        if by_target:  # a target changed between the decision and its replacement
            plan.deferred = True
            self.result.deferred.extend(by_target)
        for delete in plan.deletes:
            self._delete(plan, delete)
        for record in plan.records:
            record()
        self.state.commit()

    def _preview(self, plan: _Plan) -> None:
        """A dry run's result: what the plan would write and delete (nothing is fetched)."""
        self.result.written += [w.target for w in plan.writes]
        self.result.bytes += sum(w.entry.size for w in plan.writes)
        self.result.deleted += [d.path for d in plan.deletes]
        self.result.written += sorted(plan.blocked)  # placed once the deletions ran
        self.result.conflicts += list(plan.evictions)

    def _replaceable(self, write: _Write, final: str) -> bool:
        """Right before ``final`` is replaced: it must be what the decision saw; what it holds
        goes to its conflict copy or to the versions folder."""
        if stat_file(final) != write.expect or (
            write.expect is None and os.path.isdir(final)  # (a symlink is replaced itself)
        ):
            return False
        if write.expect is None:
            return True
        if write.copy_to is not None and self._link_copy(final, *write.copy_to):
            return True
        self._keep(write.target, move=False)
        return True

    def _link_copy(self, final: str, copy_path: str, copy: Optional[Version]) -> bool:
        """Keep the file at ``final`` as the conflict copy ``copy_path`` of version ``copy``
        (a hard link, so the path itself is never missing); False when that cannot be done."""
        try:
            folder = target_folder(self.root, copy_path)
            self._supersede(copy_path, copy)
            os.link(final, folder / copy_path.rpartition("/")[2], follow_symlinks=False)
        except (OSError, IntegrityError):
            return False
        return True

    def _supersede(self, copy_path: str, copy: Optional[Version]) -> None:
        """Make way for ``copy`` at ``copy_path`` where an unchanged version it has seen stands:
        a copy is named after its author and the second of its mtime, so the copies of two
        versions of one author made within one second share the name. The later one keeps it
        (as on every client that meets both) and the earlier goes to the previous versions."""
        if copy is None:
            return
        local, info, clean = self._local(copy_path)
        if local is None or info is None or not clean or not dominates(copy.vector, local.vector):
            return
        if self.options.versions.kind == "none":
            os.unlink(f"{self._root}/{copy_path}")
        else:
            self._keep(copy_path, move=True)
        self.state.forget(copy_path)  # should the link fail, no deletion of it is pushed

    def _keep(self, path: str, *, move: bool) -> None:
        if keep_version(self.root, path, self.options.versions, move=move) is not None:
            self.result.versioned += 1

    def _placed(self, write: _Write, info: FileStat) -> None:
        """Record a file now in place (and the conflict copy of what it replaced)."""
        self.result.written.append(write.target)
        copy_path, copy = write.copy_to or ("", None)
        if copy is not None and write.expect is not None:
            kept = stat_file(f"{self._root}/{copy_path}")
            if kept is not None and kept.inode == write.expect.inode:
                self._set_record(copy_path, kept, copy)
                self.result.copies.append(copy_path)
        if write.record is None:
            self.state.forget(write.target)
            self.state.drop_tombstone(write.target)
        else:
            self._set_record(write.target, info, write.record)
            if write.target != write.entry.path:  # a conflict copy of the incoming version
                self.result.copies.append(write.target)

    def _delete(self, plan: _Plan, delete: _Delete) -> None:
        path, version = delete.path, delete.version
        local_path = f"{self._root}/{path}"
        target_folder(self.root, path)  # refuses symlinked parents
        if stat_file(local_path) != delete.expect:
            plan.deferred = True
            self.result.deferred.append(path)
            return
        if delete.copy_to is not None and self._link_copy(local_path, *delete.copy_to):
            copy_path, copy = delete.copy_to
            os.unlink(local_path)
            self._set_record(copy_path, delete.expect, copy)  # a link keeps the stat
            self.result.copies.append(copy_path)
        elif self.options.versions.kind == "none":
            os.unlink(local_path)
        else:
            self._keep(path, move=True)
        self.state.forget(path)
        self._set_tombstone(path, version)
        self.result.deleted.append(path)
        if delete.prune:  # the sender removed the folder too
            _remove_empty_parents(self.root, path)


def _cleared_by(manifest: Manifest, options: PullOptions) -> set[str]:
    """The paths ``manifest``'s deletions may clear: each deleted path and its folders."""
    if not options.propagate_deletions or not manifest.deletions:
        return set()
    cleared: set[str] = set()
    for deletion in manifest.deletions:
        path = deletion.path
        while path and path not in cleared:
            cleared.add(path)
            path = path.rpartition("/")[0]
    return cleared


def _first_object(write: _Write) -> int:
    pieces = write.entry.pieces
    return pieces[0][0] if pieces else -1


def _remove_empty_parents(root: Path, path: str) -> None:
    """Remove the folders a deletion left empty, up to (not including) ``root``."""
    parts = path.split("/")[:-1]
    while parts:
        try:
            os.rmdir(root.joinpath(*parts))
        except OSError:  # not empty (or already gone): keep it and its parents
            return
        parts.pop()
