"""Staged local writes: complete, verified files that appear in the folder only together.

Every file is written where nobody looks for it, hashed while written and compared with its
expected checksum, given its mtime, then the whole batch is made durable with one filesystem
sync, and only then moved into place:

* a file whose folder exists is written to a hidden temporary name beside its target
  (``O_CREAT | O_EXCL | O_NOFOLLOW``) and renamed onto it;
* a file whose folder is missing is written under its own name inside a new hidden folder
  (``.escale-tmp-…``) that stands for the highest missing folder, and that folder is renamed
  into place as a whole: one rename for a new folder of thousands of files instead of one per
  file (if the folder appeared meanwhile, its files are moved one by one instead).

Folders are checked once per batch (``lstat``: no symlink, no file on the way).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Callable, Optional, Union

from .checksum import Hasher
from .errors import IntegrityError
from .local import TEMP_PREFIX, FileStat
from .writeback import WRITEBACK_EVERY, start_writeback, sync_filesystem


class StagedWrites:
    """One batch of staged files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)
        # where the file is now, where a rename puts it (None: its staged folder moves), the
        # path relative to root, its checksum, its stat after writing (a rename keeps it)
        self.pending: list[tuple[str, Optional[str], str, str, FileStat]] = []
        # new folders: (temporary folder, final folder, relative path)
        self.new_folders: list[tuple[str, str, str]] = []
        self.size = 0
        self._folders: dict[str, str] = {"": self._root}  # relative folder → where to write
        # relative folders inside a new folder → that new folder's temporary path
        self._inside: dict[str, str] = {}
        self._members: dict[str, list[int]] = {}  # new folder → its files (pending indices)
        self._token = uuid.uuid4().hex[:12]  # with a counter, unique temporary names

    def folder(self, relpath: str) -> str:
        """The absolute folder where the file ``relpath`` is written (created if needed)."""
        parent = relpath.rpartition("/")[0]
        known = self._folders.get(parent)
        return known if known is not None else self._folder(parent, relpath)

    def _folder(self, rel: str, relpath: str) -> str:
        known = self._folders.get(rel)
        if known is not None:
            return known
        above, _, name = rel.rpartition("/")
        base = self._folder(above, relpath)
        path = f"{base}/{name}"
        if above in self._inside:  # inside a folder of ours: nobody else writes there
            os.mkdir(path)
            self._inside[rel] = self._inside[above]
        else:
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                temp = f"{base}/{TEMP_PREFIX}{self._token}d{len(self.new_folders):x}"
                os.mkdir(temp)
                self.new_folders.append((temp, path, rel))
                self._inside[rel] = temp
                self._members[temp] = []
                path = temp
            else:
                if stat.S_ISLNK(info.st_mode):
                    raise IntegrityError(f"refusing to write {relpath}: {path} is a symlink")
                if not stat.S_ISDIR(info.st_mode):
                    raise IntegrityError(f"refusing to write {relpath}: {path} is not a folder")
        self._folders[rel] = path
        return path

    def stage(
        self,
        relpath: str,
        chunks: Iterable[Union[bytes, memoryview]],
        *,
        mtime_ns: Optional[int],
        checksum: str,
        factory: Callable[[], Hasher],
        target: Optional[str] = None,
    ) -> None:
        """Write ``chunks`` as the future ``target`` (default ``relpath``).

        :raises IntegrityError: the content does not match ``checksum`` (nothing is kept), or
            the target's folder is reached through a symlink.
        """
        destination = target or relpath
        folder = self.folder(destination)
        parent, _, name = destination.rpartition("/")
        final: Optional[str] = None
        owner = self._inside.get(parent)
        if owner is not None:
            path = f"{folder}/{name}"  # its folder is moved into place with it
        else:
            path = f"{folder}/{TEMP_PREFIX}{self._token}{len(self.pending):x}"
            final = f"{folder}/{name}"
        try:
            fd = os.open(path, _CREATE_FLAGS, 0o644)
        except FileExistsError:  # the same name twice in one batch (only a new folder says so)
            raise IntegrityError(f"refusing to write {destination} twice") from None
        try:
            hasher = factory()
            written = 0
            for chunk in chunks:
                hasher.update(chunk)
                _write_all(fd, chunk)
                written += len(chunk)
                if written % WRITEBACK_EVERY < len(chunk):  # crossed another 8 MiB
                    start_writeback(fd)
            self.size += written
            if hasher.hexdigest() != checksum:
                raise IntegrityError(f"content of {relpath} does not match its checksum")
            if mtime_ns is not None:
                os.utime(fd if _UTIME_FD else path, ns=(mtime_ns, mtime_ns))
            info = os.fstat(fd)  # a rename keeps size, mtime and inode
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        stat_ = FileStat(info.st_size, info.st_mtime_ns, info.st_ino)
        if owner is not None:
            self._members[owner].append(len(self.pending))
        self.pending.append((path, final, destination, checksum, stat_))

    def commit(
        self, check: Optional[Callable[[str, str], bool]] = None
    ) -> list[tuple[str, FileStat, str]]:
        """Sync the staged files to disk, move them into place; return (path, stat,
        checksum) of each file placed.

        :param check: called as ``check(relpath, final_path)`` right before a file replaces
            whatever is at its final path (not for files inside a new folder, which nobody
            else can have touched); it re-checks the target and keeps what it holds, and
            returns False to leave the target alone (that file is then not placed).
        """
        if not self.pending:
            self.abort()
            return []
        _sync([path for path, *_ in self.pending])
        done: list[tuple[str, FileStat, str]] = []
        placed: set[str] = set()  # staged paths now in place (or given up)
        try:
            for path, final, destination, checksum, stat_ in self.pending:
                if final is not None:
                    placed.add(path)
                    if check is None or check(destination, final):
                        _replace(path, final, destination)
                        done.append((destination, stat_, checksum))
                    else:
                        os.unlink(path)
            for temp, final_folder, rel in self.new_folders:
                self._place_folder(temp, final_folder, rel, placed, done, check)
        finally:
            self.pending = [p for p in self.pending if p[0] not in placed]
            self.abort()
        return done

    def _place_folder(
        self,
        temp: str,
        final: str,
        rel: str,
        placed: set[str],
        done: list[tuple[str, FileStat, str]],
        check: Optional[Callable[[str, str], bool]],
    ) -> None:
        """Rename a new folder into place, or move its files one by one if a folder of that
        name appeared meanwhile (a file there is refused, as a symlink is)."""
        inside = [self.pending[i] for i in self._members[temp]]
        try:
            os.rename(temp, final)  # fails unless final is missing (or an empty folder)
        except OSError:
            for path, _, destination, checksum, stat_ in inside:
                target = f"{target_folder(self.root, destination)}/{destination.rpartition('/')[2]}"
                placed.add(path)
                if check is None or check(destination, target):
                    _replace(path, target, destination)
                    done.append((destination, stat_, checksum))
            return
        for path, _, destination, checksum, stat_ in inside:
            placed.add(path)
            done.append((destination, stat_, checksum))

    def abort(self) -> None:
        """Forget what is staged, deleting the temporary files and folders not yet placed."""
        for path, final, *_ in self.pending:
            if final is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        for temp, *_ in self.new_folders:
            shutil.rmtree(temp, ignore_errors=True)  # gone once renamed into place
        self.pending, self.new_folders, self.size = [], [], 0
        self._folders, self._inside, self._members = {"": self._root}, {}, {}


def target_folder(root: Path, relpath: str) -> Path:
    """The folder that will hold ``relpath``, created if needed, never through a symlink.

    :raises IntegrityError: a parent is a symlink or a file.
    """
    folder = root
    for part in relpath.split("/")[:-1]:
        folder = folder / part
        try:
            info = os.lstat(folder)
        except FileNotFoundError:
            os.mkdir(folder)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise IntegrityError(f"refusing to write {relpath}: {folder} is a symlink")
        if not stat.S_ISDIR(info.st_mode):
            raise IntegrityError(f"refusing to write {relpath}: {folder} is not a folder")
    return folder


def _replace(path: str, final: str, destination: str) -> None:
    try:
        os.replace(path, final)
    except IsADirectoryError:
        raise IntegrityError(f"refusing to write {destination}: a folder has that name") from None


_CREATE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_UTIME_FD = os.utime in os.supports_fd


def _write_all(fd: int, data: Union[bytes, memoryview]) -> None:
    written = os.write(fd, data)
    if written == len(data):  # a regular file takes it all at once
        return
    view = memoryview(data)[written:]
    while view:
        view = view[os.write(fd, view) :]


def _sync(files: list[str]) -> None:
    """Make ``files`` durable: one filesystem sync for a batch, an fsync for a single file."""
    if len(files) > 1:
        sync_filesystem(files[0])
        return
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
