"""The local folder: scanning with filters, hashing, disk writes started early, and escale's
temporary files (the writes themselves are staged by :mod:`escale_core.staging`)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Union

from .checksum import Hasher
from .errors import LocalFolderError
from .ignore import IGNORE_FILE, IgnoreRules, load_ignore
from .patterns import Pattern, matches_any

TEMP_PREFIX = ".escale-tmp-"
READ_BLOCK = 1 << 20


class FileStat(NamedTuple):
    """What a scan records of a file: enough to tell whether it changed.

    A named tuple, not a dataclass: a scan makes one per file, and an idle round over 100,000
    files is dominated by such per-file costs.
    """

    size: int
    mtime_ns: int
    inode: int


@dataclass
class Filters:
    """Which files and folders are synced. Hidden names (starting with ".") never are, except
    the ``.escaleignore`` of the root, which always is."""

    file_types: list[str]
    include: list[Pattern]
    exclude: list[Pattern]
    include_directories: list[Pattern]
    exclude_directories: list[Pattern]
    #: the rules of the folder's ``.escaleignore``, on top of the patterns (:func:`with_ignore`)
    ignore: Optional[IgnoreRules] = None

    def accepts_dir(self, relpath: str) -> bool:
        """Whether to enter folder ``relpath``."""
        name = relpath.rsplit("/", 1)[-1]
        if name.startswith("."):
            return False
        if self.ignore is not None and self.ignore.ignores_dir(relpath):
            return False
        if matches_any(self.exclude_directories, name) or matches_any(
            self.exclude_directories, relpath
        ):
            return False
        if self.include_directories:
            # an included folder's whole subtree is included; its parents must be entered too
            parts = relpath.split("/")
            ancestors = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            return any(
                p.matches(folder) or p.matches(folder.rsplit("/", 1)[-1])
                for p in self.include_directories
                for folder in ancestors
            ) or any(
                not p.is_regex and p.source.startswith(relpath + "/")
                for p in self.include_directories
            )
        return True

    @property
    def accepts_all(self) -> bool:
        """No pattern and no type: every non-hidden name is synced."""
        return not (
            self.file_types
            or self.include
            or self.exclude
            or self.include_directories
            or self.exclude_directories
            or self.ignore is not None
        )

    def accepts_file(self, relpath: str) -> bool:
        """Whether file ``relpath`` is synced (its folders being accepted)."""
        if relpath == IGNORE_FILE:  # every client applies the same patterns
            return True
        name = relpath.rsplit("/", 1)[-1]
        if name.startswith("."):
            return False
        if self.ignore is not None and self.ignore.ignores_file(relpath):
            return False
        if self.file_types and (
            "." not in name or name.rsplit(".", 1)[-1].lower() not in self.file_types
        ):
            return False
        if self.include and not matches_any(self.include, name):
            return False
        return not matches_any(self.exclude, name)

    def accepts_path(self, relpath: str) -> bool:
        """Whether a file path (with its folders) is synced."""
        if self.accepts_all:
            return relpath == IGNORE_FILE or not (relpath.startswith(".") or "/." in relpath)
        parts = relpath.split("/")
        return all(
            self.accepts_dir("/".join(parts[: i + 1])) for i in range(len(parts) - 1)
        ) and self.accepts_file(relpath)


def with_ignore(filters: Filters, root: Path) -> Filters:
    """``filters`` with the rules of ``root``'s ``.escaleignore`` as it is now (read again
    each round: it is synced, so another client may have changed it).

    :raises IgnoreFileError: the file cannot be read or holds an invalid pattern.
    """
    rules = load_ignore(root)
    return filters if rules is filters.ignore else replace(filters, ignore=rules)


def scan(
    root: Path,
    filters: Filters,
    temp_files: Optional[list[str]] = None,
    unnamed: Optional[list[str]] = None,
    symlinks: Optional[list[str]] = None,
    unreadable: Optional[list[str]] = None,
) -> dict[str, FileStat]:
    """Regular files under ``root`` that pass ``filters``; symlinks are not followed.

    Each folder is listed through an open descriptor, so every ``stat`` is relative to it
    (``fstatat``) instead of walking the whole path again: about 10% off an idle round.

    :param temp_files: if given, the absolute paths of escale's own temporary files and
        folders (left by a killed run) are appended to it, so no second walk is needed to find
        them (:func:`remove_temp` deletes them).
    :param unnamed: if given, the relative paths of files and folders whose name is not valid
        UTF-8 are appended to it (they are never synced: a relay path is UTF-8 text).
    :param symlinks: if given, the relative paths of the symlinks the filters accept are
        appended to it (never followed nor synced).
    :param unreadable: if given, the relative paths of the files and folders that cannot be
        read (permission denied) are appended to it, folders with a trailing ``/``.
    :raises LocalFolderError: ``root`` itself cannot be listed (a scan that saw nothing
        would take every file for deleted).
    """
    found: dict[str, FileStat] = {}
    walk(ScanSink(found, temp_files, unnamed, symlinks, unreadable), filters, [("", str(root))])
    return found


class ScanSink(NamedTuple):
    """Where :func:`walk` puts what it finds (see :func:`scan` for each list)."""

    found: dict[str, FileStat]
    temp_files: Optional[list[str]] = None
    unnamed: Optional[list[str]] = None
    symlinks: Optional[list[str]] = None
    unreadable: Optional[list[str]] = None


#: A folder waiting to be listed: (its relative path with a trailing "/", or "" for the
#: root; its absolute path).
Folder = tuple[str, str]


def walk(
    sink: ScanSink,
    filters: Filters,
    pending: list[Folder],
    until: Optional[int] = None,
    budget: Optional[int] = None,
) -> list[Folder]:
    """List the folders of ``pending`` and every folder below them into ``sink``; return the
    folders left (none when the walk is complete).

    :param until: walk breadth-first and stop once this many folders wait (a scan split
        between processes hands them out).
    :param budget: with ``until``, also stop once ``sink.found`` holds this many files.
    """
    found = sink.found
    unreadable, unnamed, symlinks = sink.unreadable, sink.unnamed, sink.symlinks
    accept_dir = None if filters.accepts_all else filters.accepts_dir
    accept_file = None if filters.accepts_all else filters.accepts_file
    new = tuple.__new__  # FileStat's own __new__ is a Python function: 100,000 calls add up
    while pending:
        if until is not None:
            if len(pending) >= until or (budget is not None and len(found) >= budget):
                return pending
            prefix, folder = pending.pop(0)  # breadth-first: a short phase, few folders
        else:
            prefix, folder = pending.pop()
        fd = _open_folder(folder, prefix, unreadable)
        if fd is None:
            continue
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    name = entry.name
                    if name[0] == ".":  # hidden names are never synced (but .escaleignore)
                        _hidden(entry, prefix, folder, found, sink.temp_files)
                        continue
                    rel = prefix + name
                    if not name.isascii() and not _utf8(name):
                        if unnamed is not None:
                            unnamed.append(rel)
                        continue
                    if entry.is_file(follow_symlinks=False):  # the most common: first
                        if accept_file is None or accept_file(rel):
                            try:
                                info = entry.stat(follow_symlinks=False)
                            except FileNotFoundError:  # deleted since listed
                                continue
                            except PermissionError:  # a folder that may be listed, not searched
                                if unreadable is not None:
                                    unreadable.append(rel)
                                continue
                            found[rel] = new(
                                FileStat, (info.st_size, info.st_mtime_ns, info.st_ino)
                            )
                    elif entry.is_dir(follow_symlinks=False):
                        if accept_dir is None or accept_dir(rel):
                            pending.append((rel + "/", f"{folder}/{name}"))
                    elif (
                        symlinks is not None
                        and entry.is_symlink()
                        and (accept_file is None or accept_file(rel))
                    ):
                        symlinks.append(rel)
        finally:
            os.close(fd)
    return pending


def _open_folder(folder: str, prefix: str, unreadable: Optional[list[str]]) -> Optional[int]:
    """A descriptor on ``folder`` to list it, or ``None`` when it cannot be."""
    try:  # the root may be a symlink to the synced folder; folders below it may not
        return os.open(folder, _DIR_FLAGS | (_NOFOLLOW if prefix else 0))
    except PermissionError:
        if not prefix:
            raise LocalFolderError(
                f"local folder {folder}: permission denied; nothing was synced and nothing "
                "deleted: fix its permissions"
            ) from None
        if unreadable is not None:
            unreadable.append(prefix)
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG and unreadable is not None:
            unreadable.append(prefix)  # deeper than the system reaches by path
        return None  # else gone, replaced by a symlink or a file since listed


def _hidden(
    entry: os.DirEntry[str],
    prefix: str,
    folder: str,
    found: dict[str, FileStat],
    temp_files: Optional[list[str]],
) -> None:
    """A hidden entry: the root's ``.escaleignore`` is synced, escale's temporary files are
    noted (to be removed), anything else is left alone."""
    name = entry.name
    if name == IGNORE_FILE and not prefix and entry.is_file(follow_symlinks=False):
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            return
        found[name] = FileStat(info.st_size, info.st_mtime_ns, info.st_ino)
    elif temp_files is not None and name.startswith(TEMP_PREFIX) and not entry.is_symlink():
        temp_files.append(f"{folder}/{name}")  # a file or a new folder


def _utf8(name: str) -> bool:
    """Whether a name read from the file system is valid UTF-8 (Python decodes other bytes as
    lone surrogates, which no UTF-8 text, database or manifest can hold)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: The longest file name (in bytes) of the usual file systems (ext4, XFS, Btrfs, NTFS, APFS).
NAME_MAX = 255


def fit_name(stem: str, tail: str, ext: str = "", limit: int = NAME_MAX) -> str:
    """``stem + tail + ext``, the stem shortened by whole characters so that the name fits in
    ``limit`` bytes of UTF-8 (a name made by escale, such as a conflict copy's, must fit
    wherever the original did); an extension too long to keep is shortened with the stem."""
    if len((tail + ext).encode("utf-8", "surrogateescape")) > limit // 2:
        stem, ext = stem + ext, ""
    room = limit - len((tail + ext).encode("utf-8", "surrogateescape"))
    encoded = stem.encode("utf-8", "surrogateescape")
    if len(encoded) > room:
        stem = encoded[: max(room, 1)].decode("utf-8", "ignore") or "_"
    return stem + tail + ext


def shown_name(path: str) -> str:
    """A path for a message, its undecodable bytes escaped (``bad\\xff.txt``)."""
    return repr(path.encode("utf-8", "surrogateescape"))[2:-1]


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def stat_file(path: Union[str, Path]) -> Optional[FileStat]:
    """The :class:`FileStat` of a regular file, or ``None`` (missing, symlink, folder)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return FileStat(info.st_size, info.st_mtime_ns, info.st_ino)


def hash_file(path: Union[str, Path], factory: Callable[[], Hasher]) -> str:
    """Hex checksum of a file, read in 1 MiB blocks."""
    hasher = factory()
    buffer = bytearray(READ_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as source:
        while True:
            count = source.readinto(buffer)
            if not count:
                return hasher.hexdigest()
            hasher.update(view[:count])


def remove_temp(path: str) -> None:
    """Delete one temporary file or folder of escale's (a missing one is no error)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)  # never follows a symlink inside it
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def remove_temp_files(root: Path) -> int:
    """Delete the temporary files and folders a killed escale left behind; return how many."""
    count = 0
    for folder, folders, files in os.walk(root):
        for name in [n for n in folders + files if n.startswith(TEMP_PREFIX)]:
            remove_temp(os.path.join(folder, name))
            count += 1
        folders[:] = [n for n in folders if not n.startswith(TEMP_PREFIX)]
    return count


def new_id() -> str:
    """A random hex identifier."""
    return uuid.uuid4().hex


#: what a user can do about a file-system error met in the synced folder, by errno
_OS_ERROR_HINTS = {
    errno.ENOSPC: "free some space, then sync again",
    errno.EDQUOT: "free some space (a disk quota is full), then sync again",
    errno.EROFS: 'remount it read-write, or set mode = "upload" to only send its changes',
    errno.EACCES: "fix its permissions (chmod, chown), then sync again",
    errno.EPERM: "fix its permissions or attributes (chmod, chattr), then sync again",
    errno.EMFILE: "raise the open-files limit (ulimit -n), then sync again",
    errno.ENAMETOOLONG: "shorten the folder's path",
}


def describe_os_error(exc: OSError, root: Path) -> str:
    """One line for a file-system error met in the synced folder ``root``: what failed,
    where (relative to ``root``, a temporary file shown as its folder), and what to do.
    A file is only ever replaced by a complete one, so nothing was lost: the line says so."""
    where = ""
    if exc.filename:
        name = os.fsdecode(exc.filename)
        rel = os.path.relpath(name, root) if os.path.isabs(name) else name
        folder, _, base = rel.rpartition("/")
        if base.startswith(TEMP_PREFIX):  # the name of a file being written says nothing
            where = f" (writing into {folder})" if folder else " (writing into it)"
        else:
            where = f" ({name if rel.startswith('..') else rel})"
    reason = (exc.strerror or type(exc).__name__).lower()
    hint = _OS_ERROR_HINTS.get(exc.errno or 0, "fix the cause, then sync again")
    return f"local folder {root}: {reason}{where}; nothing was replaced by a partial file; {hint}"
